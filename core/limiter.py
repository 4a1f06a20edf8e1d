"""A fair gate for heavy work done inside the server (sampling on a page, building a report): `slots` jobs at once,
at most one per learner, and when a slot frees the learner served longest ago goes first (one who was never served
before anyone), ties by arrival. So one learner's many tabs queue behind their own job and never ahead of a
classmate's. Plain threading: the server's sessions are threads of one process."""
from __future__ import annotations

import itertools
import threading
import time


class FairGate:
    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))
        self._cv = threading.Condition()
        self._running: dict[str, int] = {}           # owner -> jobs running (0 or 1)
        self._waiting: list[tuple[int, str]] = []    # (arrival, owner)
        self._served: dict[str, float] = {}          # owner -> when their last job was let in
        self._arrivals = itertools.count()

    def _next(self):
        free = [w for w in self._waiting if not self._running.get(w[1])]
        if not free or sum(self._running.values()) >= self.slots:
            return None
        return min(free, key=lambda w: (self._served.get(w[1], float("-inf")), w[0]))

    def try_acquire(self, owner: str) -> bool:
        """Let the job in now if it is its turn (nobody waits before it); False without waiting otherwise."""
        with self._cv:
            ticket = (next(self._arrivals), owner)
            self._waiting.append(ticket)
            if self._next() == ticket:
                self._enter(ticket)
                return True
            self._waiting.remove(ticket)
            return False

    def acquire(self, owner: str, timeout: float | None = None) -> bool:
        """Wait for this owner's turn; False when `timeout` seconds pass first (the job then never runs)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            ticket = (next(self._arrivals), owner)
            self._waiting.append(ticket)
            while self._next() != ticket:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    self._waiting.remove(ticket)
                    self._cv.notify_all()
                    return False
                self._cv.wait(left)
            self._enter(ticket)
            return True

    def _enter(self, ticket):
        self._waiting.remove(ticket)
        self._running[ticket[1]] = self._running.get(ticket[1], 0) + 1
        self._served[ticket[1]] = time.monotonic()
        self._cv.notify_all()

    def release(self, owner: str) -> None:
        with self._cv:
            self._running[owner] = max(0, self._running.get(owner, 0) - 1)
            self._cv.notify_all()

    def waiting(self) -> int:
        with self._cv:
            return len(self._waiting)
