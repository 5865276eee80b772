"""The HTTP/1.1 connection that ``storage-proxy serve`` runs: uvicorn's httptools protocol with
bounds a hostile client cannot stretch, enforced while the bytes arrive.

- The request head (request line and headers) is bounded in total, and the URL on its own:
  past either bound the connection answers 431 or 414 and closes, before the application
  sees anything and before more than one extra read is held in memory.
- A head must arrive within a deadline (slowloris). A body is checked over windows of the
  idle timeout: one that sent nothing, or less than the minimum rate (a 1 byte/s trickle),
  in a window where the application was reading is cut: 408 when no answer has started, the
  connection closes, the application's next ``receive`` reports the disconnect, and the
  request's usual clean-up (quota reservation, staging file) runs.
- The parser's own refusals are ``application/problem+json`` like every other error.

Limits come from the settings (``STORAGE_MAX_HEADER_BYTES``…), read once per process, so
``serve --workers N`` workers find them in the environment they inherit."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import cache

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.config import Settings
from app.errors import HTTP_STATUS_PROBLEMS, MALFORMED_REQUEST_PROBLEM
from app.observability.logging import get_logger
from app.problems import PROBLEM_CONTENT_TYPE

log = get_logger(__name__)

# For uvicorn's ``http=`` option: an import string survives the spawn of worker processes.
PROTOCOL_IMPORT_STRING = "app.http_protocol:BoundedHttpProtocol"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int
    max_url_bytes: int
    header_timeout_seconds: float
    body_idle_timeout_seconds: float
    body_min_bytes_per_second: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_url_bytes=settings.max_url_bytes,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_idle_timeout_seconds=settings.body_idle_timeout_seconds,
            body_min_bytes_per_second=settings.body_min_bytes_per_second,
        )


@cache
def configured_limits() -> HttpLimits:
    return HttpLimits.from_settings(Settings())


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; uvicorn then calls
    ``send_400_response``, which answers the refusal recorded on the protocol."""


class BoundedHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._limits = configured_limits()
        self._refusal: tuple[int, str] | None = None
        self._in_head = False
        self._head_bytes = 0
        self._header_fields_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._window_bytes = 0
        self._window_excused = False
        super().connection_made(transport)
        # A connection that never sends a whole head is cut too, not only a slow one.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        head_before = self._in_head
        super().data_received(data)
        # httptools hands over a header only once it is whole, so a giant one is bounded by
        # counting the reads that arrive while the head is incomplete. A read in which a head
        # began is not counted: the exact check in ``on_header`` covers it.
        if head_before and self._in_head and self._refusal is None:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(431, self._header_detail)

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._header_fields_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._limits.max_url_bytes:
            self._stop(414, f"the URL is longer than {self._limits.max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_fields_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(self.url) + self._header_fields_bytes > self._limits.max_header_bytes:
            self._stop(431, self._header_detail)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        self._arm_idle_timer()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._window_bytes += len(body)
        if self.flow.read_paused:
            self._window_excused = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_idle_timer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to anything the parser refused: ours, or a malformed request."""
        if self._refusal is not None:
            status, detail = self._refusal
            self._refusal = None  # _refuse records it again
            self._refuse(status, detail)
        else:
            self._refuse(400, msg)

    # -- refusals and timeouts -------------------------------------------------------

    @property
    def _header_detail(self) -> str:
        return f"the request head is larger than {self._limits.max_header_bytes} bytes"

    def _stop(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise _Refused(detail)

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        self._cancel_timers()
        if self.transport.is_closing():
            return
        log.warning(
            "request refused at the connection",
            extra={"status": status, "detail": detail, "client": _address(self.client)},
        )
        self.transport.write(_problem_bytes(status, detail))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self._limits.header_timeout_seconds, self._on_head_timeout
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self._in_head:
            seconds = self._limits.header_timeout_seconds
            self._refuse(408, f"the request head did not arrive within {seconds} s")
        elif self.cycle is None and not self.transport.is_closing():
            self.transport.close()  # connected, and never sent a byte

    def _arm_idle_timer(self) -> None:
        """Start a new window of the body's progress check."""
        self._cancel_idle_timer()
        self._window_bytes = 0
        self._window_excused = False
        if self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete:
            self._idle_timer = self.loop.call_later(
                self._limits.body_idle_timeout_seconds, self._on_body_window_end
            )

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_body_window_end(self) -> None:
        self._idle_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        window = self._limits.body_idle_timeout_seconds
        required = max(1, int(self._limits.body_min_bytes_per_second * window))
        if (
            self._window_excused
            or self.flow.read_paused
            or cycle.waiting_for_100_continue
            or self._window_bytes >= required
        ):
            # Progress enough, or the application was not reading: the wait was ours.
            self._arm_idle_timer()
            return
        detail = f"the request body sent {self._window_bytes} bytes in {window} s"
        if cycle.response_started:
            log.warning("request body stalled; connection cut", extra={"detail": detail})
            self.transport.close()
        else:
            self._refuse(408, detail)

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        self._cancel_idle_timer()


def _problem_bytes(status: int, detail: str) -> bytes:
    problem_type, title = (
        MALFORMED_REQUEST_PROBLEM if status == 400 else HTTP_STATUS_PROBLEMS[status]
    )
    body = json.dumps(
        {"type": problem_type, "title": title, "status": status, "detail": detail}
    ).encode()
    head = [
        STATUS_LINE[status],
        f"content-type: {PROBLEM_CONTENT_TYPE}\r\n".encode(),
        f"content-length: {len(body)}\r\n".encode(),
        b"connection: close\r\n",
        b"\r\n",
    ]
    return b"".join(head) + body


def _address(client: tuple[str, int] | None) -> str | None:
    return f"{client[0]}:{client[1]}" if client else None
