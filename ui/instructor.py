"""The instructor key: without sign-in, the instructor role is for whoever types ARLAB_INSTRUCTOR_KEY (kept in
the browser as a keyed hash, not the key). Tries are throttled per browser and per server, before the key is
looked at, so it cannot be found by guessing."""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import streamlit as st

from .identity import Me, _same, me

# Instructor-key tries: per browser (owner token) and for the whole server (so fresh cookies do not get around it).
KEY_TRIES_PER_OWNER, KEY_TRIES_PER_SERVER, KEY_WINDOW_S = 5, 30, 60.0


@dataclass(frozen=True)
class KeyTry:
    """What came of a try at the instructor key: true when it made this learner an instructor; `message` says why
    not."""
    ok: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.ok


class Throttle:
    """At most `per_owner` tries per owner and `per_server` in all within any `window_s` seconds."""

    def __init__(self, per_owner: int = KEY_TRIES_PER_OWNER, per_server: int = KEY_TRIES_PER_SERVER,
                 window_s: float = KEY_WINDOW_S):
        self.per_owner, self.per_server, self.window_s = per_owner, per_server, window_s
        self._lock = threading.Lock()
        self._all: deque[float] = deque()
        self._by_owner: dict[str, deque[float]] = {}

    def wait(self, owner: str, now: float | None = None) -> float:
        """0.0, counting this try; or the seconds until one more is allowed (counting nothing)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for q in (self._all, *self._by_owner.values()):
                while q and q[0] <= now - self.window_s:
                    q.popleft()
            self._by_owner = {o: q for o, q in self._by_owner.items() if q}   # bounded by per_server
            mine = self._by_owner.get(owner, deque())
            full = [q for q, cap in ((mine, self.per_owner), (self._all, self.per_server)) if len(q) >= cap]
            if full:
                return max(q[0] + self.window_s - now for q in full)
            mine.append(now)
            self._all.append(now)
            self._by_owner[owner] = mine
            return 0.0


KEY_TRIES = Throttle()   # one per server process


def become_instructor(key: str) -> KeyTry:
    """Try `key` as ARLAB_INSTRUCTOR_KEY. Throttled (per browser and per server) before the key is looked at, so
    it cannot be found by guessing."""
    want = os.environ.get("ARLAB_INSTRUCTOR_KEY", "")
    who = me()
    if not want:
        return KeyTry(False, "This server has no instructor key.")
    wait = KEY_TRIES.wait(who.owner)
    if wait:
        return KeyTry(False, f"Too many tries: wait {math.ceil(wait)} s.")
    if not _same(key, want):
        return KeyTry(False, "That is not the instructor key.")
    st.session_state["me"] = Me(who.owner, who.name, True, who.signed_in)
    st.session_state["me:save-role"] = True
    return KeyTry(True)
