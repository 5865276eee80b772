"""A ``TcpProxy`` on its own event loop in a background thread: real server processes (and
synchronous tests) reach a service through it, and the test cuts and restores it at will."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.tcp_proxy import TcpProxy


class ProxyThread:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.proxy = TcpProxy(upstream_host, upstream_port)

    @property
    def url_host(self) -> str:
        return self.proxy.url_host

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def start(self) -> None:
        """Listens (again, on the same port after a cut)."""
        if not self._thread.is_alive():
            self._thread.start()
        self._run(self.proxy.start())

    def cut(self) -> None:
        """Stops listening and drops every open connection."""
        self._run(self.proxy.cut())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def proxied(upstream_host: str, upstream_port: int) -> Iterator[ProxyThread]:
    proxy = ProxyThread(upstream_host, upstream_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
