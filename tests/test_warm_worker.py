"""Warm workers (core.engine.launcher): a fresh process waits with torch and the lab imported, takes exactly one run,
exits, and the next one already waits; one killed while waiting is replaced; a run handed to one is never lost nor
started twice; a run started warm writes what a cold one writes."""
import json
import os
import signal

import pytest
import torch

from conftest import wait_for
from core.engine.launcher import POOL, LocalProcessLauncher, pid_alive, warm_alive
from core.lab import spec_for, store

ENDED = ("done", "failed", "cancelled")


def _spec(seed=0, owner="amy"):
    spec = spec_for("q1a", "1d-1", "quick", 2, "cpu", seed)
    spec.owner = owner
    return spec


def _waiting(root):
    """{token: pid} of the warm workers waiting (alive) in `root`'s pool."""
    return {f.stem: int(f.read_text()) for f in (root / POOL).glob("*.wait") if warm_alive(f)}


def _ready(root):
    return [t for t in _waiting(root) if (root / POOL / f"{t}.ready").exists()]


def _ended(runs, rid):
    return runs.status(rid).get("state") in ENDED


@pytest.fixture
def warm_store(runs_dir):
    runs = store(runs_dir, max_concurrent=1, launcher=LocalProcessLauncher(warm=1))
    runs.root.mkdir(parents=True, exist_ok=True)
    runs.launcher.keep_warm(runs.root)
    wait_for(lambda: _ready(runs.root), 60, "a warm worker to be ready")
    return runs


def test_a_warm_worker_takes_one_run_exits_and_the_next_waits(warm_store):
    runs = warm_store
    (token, pid), = _waiting(runs.root).items()
    rid = runs.submit(_spec())
    handle = runs.status(rid)["handle"]
    assert handle["warm"] == token and handle["pid"] == pid      # handed to the one that waited
    wait_for(lambda: _ended(runs, rid), 60, "the run to end", step=runs.pump)
    assert runs.status(rid)["state"] == "done", runs.status(rid)
    wait_for(lambda: not pid_alive(pid), 30, "the warm worker to exit after its one run")
    others = _waiting(runs.root)
    assert others and token not in others                         # a new one waits in its place
    log = (runs.dir(rid) / "worker.log").read_text()
    assert "Traceback" not in log


def test_a_killed_waiting_worker_is_replaced_and_the_queue_drains(warm_store):
    runs = warm_store
    (token, pid), = _waiting(runs.root).items()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "the warm worker to die")
    rids = [runs.submit(_spec(seed=i, owner=f"l{i}")) for i in range(3)]
    wait_for(lambda: all(_ended(runs, r) for r in rids), 120, "the queue to drain", step=runs.pump)
    assert [runs.status(r)["state"] for r in rids] == ["done"] * 3
    assert token not in _waiting(runs.root) and _waiting(runs.root)   # replaced, by another
    assert any(runs.status(r)["handle"].get("warm") for r in rids)      # and the later runs started warm


def test_a_run_whose_warm_worker_dies_before_it_begins_is_queued_again_and_runs_once(warm_store):
    runs = warm_store
    rid = runs.submit(_spec(), start=False)
    with runs._lock():   # as pump does: hand it over and note the handle under the queue's lock
        handle = runs.launcher.start(runs.dir(rid), 1)
        runs.set_status(rid, state="running", handle=handle, pid=handle["pid"], started=1.0)
        assert handle.get("warm")
        os.kill(handle["pid"], signal.SIGKILL)   # it has its run but waits for the lock: it never began
    wait_for(lambda: _ended(runs, rid), 120, "the run to end", step=runs.pump)
    st = runs.status(rid)
    assert st["state"] == "done" and st["requeued"] == 1, st
    events = [json.loads(line) for line in (runs.dir(rid) / "events.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "start" for e in events) == 1        # started once
    assert sum(e["type"] == "result" for e in events) == 1


def _trace(runs, rid):
    events = [json.loads(line) for line in (runs.dir(rid) / "events.jsonl").read_text().splitlines()]
    return [(e["type"], e.get("step"), e.get("loss")) for e in events if e["type"] in ("start", "train", "test")]


def test_a_run_started_warm_writes_the_same_events_and_checkpoint_as_cold(warm_store, tmp_path):
    from safetensors.torch import load_file

    warm = warm_store
    cold = store(tmp_path / "cold", max_concurrent=1, launcher=LocalProcessLauncher(warm=0))
    a, b = warm.submit(_spec(seed=3)), cold.submit(_spec(seed=3))
    assert warm.status(a)["handle"].get("warm") and not cold.status(b)["handle"].get("warm")
    wait_for(lambda: _ended(warm, a) and _ended(cold, b), 120, "both runs", step=lambda: (warm.pump(), cold.pump()))
    assert warm.status(a)["state"] == cold.status(b)["state"] == "done"
    assert not list((tmp_path / "cold").glob(f"{POOL}/*.wait"))      # warm start off: no pool
    ta, tb = _trace(warm, a), _trace(cold, b)
    assert len(ta) > 5 and ta == tb
    wa, wb = load_file(warm.dir(a) / "model.safetensors"), load_file(cold.dir(b) / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
