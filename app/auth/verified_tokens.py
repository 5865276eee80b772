"""Tokens already verified by this process, so a client that sends the same bearer token on
every request pays for its signature and claim checks once, not per request (three JWT parses
were a tenth of a small request's CPU).

Only a token that passed every check is kept, with the instant it stops being valid (its
``exp`` plus the configured leeway); a kept token past that instant is dropped and verified
afresh, which then refuses it as expired. The keys an ``Authenticator`` verifies with never
change while it lives, so a verdict cannot go stale any other way. The table is bounded: a
client cycling through many valid tokens evicts the least recently used."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from app.auth.principal import Principal

DEFAULT_CAPACITY = 4096


@dataclass(frozen=True, slots=True)
class _Verdict:
    principal: Principal
    valid_until: float


class VerifiedTokens:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._verdicts: OrderedDict[str, _Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, *, now: float) -> Principal | None:
        with self._lock:
            verdict = self._verdicts.get(token)
            if verdict is None:
                return None
            if now >= verdict.valid_until:
                del self._verdicts[token]
                return None
            self._verdicts.move_to_end(token)
            return verdict.principal

    def put(self, token: str, principal: Principal, *, valid_until: float) -> None:
        with self._lock:
            self._verdicts[token] = _Verdict(principal, valid_until)
            self._verdicts.move_to_end(token)
            while len(self._verdicts) > self._capacity:
                self._verdicts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._verdicts)
