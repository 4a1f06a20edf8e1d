"""The server's shared machinery: one background pump per runs folder, the torch threads in-server work may use,
and a limiter for heavy in-server work (sampling on pages)."""
from __future__ import annotations

import os
import threading
import time
import traceback
from contextlib import contextmanager

import streamlit as st

PUMP_EVERY_S, PRUNE_EVERY_S = 2.0, 600.0


@st.cache_resource
def start_pump(root: str, _store) -> threading.Thread:
    """One thread per runs folder starts waiting runs, notices dead workers, enforces budgets and force stops, and
    prunes old runs — so no page has to, and a queue never stalls when nobody is looking. It pumps `_store`, the
    server's one store of that folder, the object the pages read: what a pump learns (e.g. why the cluster refused
    a start, `store.unavailable`) is what the sidebar shows. It ends when the folder is gone."""

    def loop():
        last_prune = 0.0
        while os.path.isdir(root):
            try:
                _store.pump()
                if time.time() - last_prune > PRUNE_EVERY_S:
                    _store.prune()
                    last_prune = time.time()
            except Exception:  # noqa: BLE001 - the pump must outlive any one bad run folder
                traceback.print_exc()
            time.sleep(PUMP_EVERY_S)

    t = threading.Thread(target=loop, name=f"arlab-pump:{root}", daemon=True)
    t.start()
    return t


def server_threads() -> int:
    """Torch threads for work done inside the server (sampling on pages): the cores the training slots leave."""
    from core.device import cpu_count

    env = os.environ.get("ARLAB_SERVER_THREADS")
    return max(1, int(env)) if env else max(1, cpu_count() - int(os.environ.get("ARLAB_SLOTS", "1") or 1))


@st.cache_resource
def _limiter():
    from core.limiter import FairGate

    return FairGate(max(1, int(os.environ.get("ARLAB_SERVER_JOBS", "1") or 1)))


@contextmanager
def server_work(what: str = "drawing samples"):
    """Heavy work in the server (sampling, completing, writing poems, building a report) runs ARLAB_SERVER_JOBS at a
    time (default 1), at most one per learner, the learner served longest ago first (core.limiter.FairGate): thirty
    learners pressing Sample at once queue here instead of thrashing the cores the training runs need, and one
    learner's many tabs wait behind their own job, never ahead of a classmate's."""
    from .identity import me

    gate, owner = _limiter(), me().owner
    if not gate.try_acquire(owner):
        with st.spinner(f"Waiting for the server: other learners are {what}…"):
            gate.acquire(owner)
    try:
        yield
    finally:
        gate.release(owner)


@contextmanager
def heavy_step():
    """The same gate without a spinner, for a heavy step inside a cached function (it runs only on a cache miss,
    e.g. the codebook lab's k-means): a cache hit never waits for other learners' work."""
    from .identity import me

    gate, owner = _limiter(), me().owner
    gate.acquire(owner)
    try:
        yield
    finally:
        gate.release(owner)
