"""Running the tools a driver manages its backend with (``xfs_quota``, ``xfs_io``…).

Drivers take a ``CommandRunner`` rather than starting processes themselves, so tests can stand
in for a tool that cannot run on the test machine, and the real runner is the one place that
knows about processes, timeouts and how their output is decoded.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol

import anyio

from drivers.errors import BackendCommandFailed

DEFAULT_TIMEOUT_SECONDS = 60.0
# What of a tool's complaint goes into the error message (the whole of it stays on the error).
MESSAGE_STDERR_CHARS = 300


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def program(self) -> str:
        return PurePath(self.argv[0]).name if self.argv else "command"

    def check(self) -> CommandResult:
        """This result, or ``BackendCommandFailed`` when the command exited non-zero."""
        if self.returncode != 0:
            complaint = " ".join(self.stderr.split())[:MESSAGE_STDERR_CHARS] or "no error output"
            raise BackendCommandFailed(
                f"{self.program} exited with status {self.returncode}: {complaint}",
                argv=self.argv,
                returncode=self.returncode,
                stderr=self.stderr,
            )
        return self


class CommandRunner(Protocol):
    async def run(self, argv: Sequence[str]) -> CommandResult:
        """Run ``argv`` (no shell) to completion without blocking the event loop.

        Raises ``BackendCommandFailed`` when the command cannot be started or does not finish
        in time. A non-zero exit is a failure too: a runner raises for it (``SubprocessRunner``
        does) or returns the result, which callers pass through ``CommandResult.check``."""
        ...


class SubprocessRunner:
    """Runs commands as child processes; one that outlives ``timeout`` seconds is killed."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if timeout <= 0:
            raise ValueError(f"command timeout must be positive, not {timeout}")
        self.timeout = timeout

    async def run(self, argv: Sequence[str]) -> CommandResult:
        args = tuple(argv)
        if not args:
            raise ValueError("cannot run an empty command")
        program = PurePath(args[0]).name
        try:
            # Cancellation (the timeout included) kills the child: anyio closes it on the way out.
            with anyio.fail_after(self.timeout):
                completed = await anyio.run_process(
                    args, stdin=subprocess.DEVNULL, env=_untranslated_env(), check=False
                )
        except TimeoutError as exc:
            raise BackendCommandFailed(
                f"{program} did not finish within {self.timeout:g} s", argv=args
            ) from exc
        except OSError as exc:
            raise BackendCommandFailed(f"cannot run {program}: {exc}", argv=args) from exc
        return CommandResult(
            argv=args,
            returncode=completed.returncode,
            stdout=_decode(completed.stdout),
            stderr=_decode(completed.stderr),
        ).check()


def _untranslated_env() -> dict[str, str]:
    # Drivers parse what the tools print, and xfsprogs translates its messages: the C locale
    # keeps them in the English the parsers expect, whatever the server's locale.
    return {**os.environ, "LC_ALL": "C"}


def _decode(output: bytes | None) -> str:
    # Paths in a tool's output need not be UTF-8; a stray byte must not hide the rest.
    return (output or b"").decode("utf-8", errors="replace")
