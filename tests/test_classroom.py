"""A classroom on one server: owners, the fair queue, caps, budgets, force stop, faults, pruning, GPU pinning.

The queue's rules are tested with a launcher that starts no process (FakeLauncher: alive until told otherwise), so
they run in milliseconds; the faults that need a real worker (budget, full disk, memory limit) use real ones.
"""
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.engine import Policy, QueueFull, RunSpec
from core.engine import worker as worker_mod
from core.lab import store as make_store
from tests.conftest import open_page

ROOT = Path(__file__).resolve().parent.parent
Q1 = {"epochs": 1}


class FakeLauncher:
    name = "fake"

    def __init__(self):
        self.live, self.started, self.stopped, self.envs = set(), [], [], []

    def start(self, run_dir, threads, env=None):
        rid = Path(run_dir).name
        self.live.add(rid)
        self.started.append(rid)
        self.envs.append(dict(env or {}))
        return {"launcher": self.name, "rid": rid}

    def alive(self, run_dir, handle):
        return (handle or {}).get("rid") in self.live

    def stop(self, run_dir, handle):
        self.live.discard((handle or {}).get("rid"))
        self.stopped.append(Path(run_dir).name)


def fake_store(root, **policy):
    launcher = FakeLauncher()
    pol = Policy(**{"slots": 1, "owner_running": 1, "owner_queued": 3, "queue_max": 50, **policy})
    return make_store(root, launcher=launcher, policy=pol), launcher


def submit(store, owner, question="q1a"):
    rid = store.submit(RunSpec(question, "1d-1", dict(Q1), owner=owner, owner_name=owner))
    time.sleep(0.002)   # distinct creation times
    return rid


def finish(store, launcher, rid, seconds=10.0):
    launcher.live.discard(rid)
    st = store.status(rid)
    store.set_status(rid, state="done", started=st.get("started", time.time()) - seconds,
                     ended=st.get("started", time.time()))
    return store.pump()


def owners_started(store, launcher):
    return [store.spec(r).owner for r in launcher.started]


# ------------------------------------------------------------------------------------------- the fair queue
def test_round_robin_nobody_waits_behind_a_second_run(tmp_path):
    store, launcher = fake_store(tmp_path)
    a = [submit(store, "ann") for _ in range(3)]       # Ann presses Train three times first
    b, c = submit(store, "bob"), submit(store, "cy")
    assert launcher.started == [a[0]]
    # the queue as each waiting learner sees it: Bob and Cy go before Ann's second and third
    assert [store.position(r)["position"] for r in (b, c, a[1], a[2])] == [1, 2, 3, 4]
    for _ in range(4):
        finish(store, launcher, launcher.started[-1])
    assert owners_started(store, launcher) == ["ann", "bob", "cy", "ann", "ann"]


def test_owner_running_cap_lets_others_pass(tmp_path):
    store, launcher = fake_store(tmp_path, slots=3, owner_running=2)
    a = [submit(store, "ann") for _ in range(3)]
    assert launcher.started == a[:2]                   # Ann's third waits for her own slot, not the machine's
    b = submit(store, "bob")
    assert launcher.started == a[:2] + [b]
    assert store.status(a[2])["state"] == "queued"


def test_caps_refuse_clearly_and_write_nothing(tmp_path):
    store, launcher = fake_store(tmp_path, owner_queued=2, queue_max=4)
    for _ in range(3):                                  # one runs, two wait
        submit(store, "ann")
    n = len(store.ids())
    with pytest.raises(QueueFull, match="already have 2 runs waiting"):
        submit(store, "ann")
    assert len(store.ids()) == n
    submit(store, "bob"), submit(store, "cy")           # the queue holds 4 now
    with pytest.raises(QueueFull, match="queue is full"):
        submit(store, "dee")
    assert len(store.ids()) == n + 2


def test_position_and_estimate(tmp_path):
    store, launcher = fake_store(tmp_path, owner_running=None)
    first = submit(store, "ann")
    waiting = [submit(store, o) for o in ("bob", "cy")]
    assert store.position(first) is None               # running, not waiting
    p = store.position(waiting[1])
    assert (p["position"], p["waiting"], p["estimate_s"]) == (2, 2, None)   # nothing finished yet: no estimate
    finish(store, launcher, first, seconds=60.0)      # a q1a quick run takes a minute here; bob's starts now
    p = store.position(waiting[1])
    assert p["position"] == 1 and 0 < p["estimate_s"] <= 60.0
    assert store.queue_summary(owner="cy")["queued"] == 1 and store.queue_summary(owner="ann")["done"] == 1


def test_owners_see_their_runs_and_pinned_ones(tmp_path):
    store, launcher = fake_store(tmp_path, slots=4, owner_running=None)
    a, b = submit(store, "ann"), submit(store, "bob")
    assert [r["id"] for r in store.list(owner="ann")] == [a]
    assert store.owns(a, "ann") and not store.owns(a, "bob") and store.owns(a, "bob", instructor=True)
    store.pin(b)
    assert {r["id"] for r in store.list(owner="ann")} == {a, b}


def test_gpu_pinning_spreads_workers(tmp_path):
    store, launcher = fake_store(tmp_path, slots=4, gpus=2, owner_running=None)
    rids = [submit(store, f"s{i}") for i in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in launcher.envs] == ["0", "1", "0", "1"]
    finish(store, launcher, rids[1])                   # GPU 1 frees up: the next run goes there
    submit(store, "s9")
    assert launcher.envs[-1]["CUDA_VISIBLE_DEVICES"] == "1"


# ------------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize("bad", [b"\xff\xfe not utf-8", b"[1, 2, 3]", b'{"state": "exploded"}', b'{"stat'])
def test_a_corrupt_status_fails_that_run_only(tmp_path, bad):
    store, launcher = fake_store(tmp_path, slots=2, owner_running=None)
    broken, fine = submit(store, "ann"), submit(store, "bob")
    (tmp_path / broken / "status.json").write_bytes(bad)
    waiting = submit(store, "cy")                       # the queue goes on: the broken run's slot is free
    assert store.status(broken)["state"] == "failed" and "corrupt" in store.status(broken)["reason"]
    assert store.status(waiting)["state"] == "running" and store.status(fine)["state"] == "running"
    assert store.queue_summary()["failed"] == 1 and len(store.list()) == 3
    json.loads((tmp_path / broken / "status.json").read_text())   # rewritten as a readable failed status


def test_cancel_then_force_stop_after_grace(tmp_path):
    store, launcher = fake_store(tmp_path, grace_s=5)
    rid = submit(store, "ann")
    assert store.cancel(rid) == "cancelling"
    store.pump()
    assert store.status(rid)["state"] == "running" and not launcher.stopped   # within the grace period
    old = time.time() - 6
    os.utime(tmp_path / rid / "cancel", (old, old))
    nxt = submit(store, "bob")
    assert launcher.stopped == [rid]
    assert store.status(rid)["state"] == "cancelled" and "by force" in store.status(rid)["reason"]
    assert store.status(nxt)["state"] == "running"


def test_budget_asks_the_run_to_stop(tmp_path):
    store, launcher = fake_store(tmp_path, budget_s=60)
    rid = submit(store, "ann")
    store.set_status(rid, device="cpu", started=time.time() - 61)
    store.pump()
    assert "budget" in (tmp_path / rid / "cancel").read_text()


def test_dead_worker_fails_and_the_queue_moves(tmp_path):
    store, launcher = fake_store(tmp_path)
    a, b = submit(store, "ann"), submit(store, "bob")
    launcher.live.discard(a)                           # killed
    store.pump()
    assert store.status(a)["state"] == "failed" and "ended without finishing" in store.status(a)["reason"]
    assert store.status(b)["state"] == "running"


def test_status_unwritable_still_shows_failed(tmp_path, monkeypatch):
    store, launcher = fake_store(tmp_path)
    rid = submit(store, "ann")
    launcher.live.discard(rid)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("core.engine.runs.write_json_atomic", full)
    store.pump()                                       # must not raise
    assert store.status(rid)["state"] == "failed"
    assert store.queue_summary()["failed"] == 1


def test_prune_keeps_active_and_pinned(tmp_path):
    store, launcher = fake_store(tmp_path, slots=4, owner_running=None, keep_days=7, keep_gb=0)
    old_done, pinned, recent, running = (submit(store, o) for o in ("a", "b", "c", "d"))
    month_ago = time.time() - 30 * 86400
    for rid in (old_done, pinned):
        launcher.live.discard(rid)
        store.set_status(rid, state="done", started=month_ago - 5, ended=month_ago)
    store.pin(pinned)
    launcher.live.discard(recent)
    store.set_status(recent, state="done", ended=time.time())
    assert store.prune() == [old_done]
    assert set(store.ids()) == {pinned, recent, running}
    store.policy.keep_days, store.policy.keep_gb = 0, 1e-9   # over the size limit: oldest finished first, never pinned
    assert store.prune() == [recent] and set(store.ids()) == {pinned, running}


# ------------------------------------------------------------------------------------------- real workers
def test_full_disk_ends_the_run_failed_and_cleans_up(runs_dir, monkeypatch):
    store = make_store(runs_dir, launcher=FakeLauncher(), policy=Policy(slots=1))
    rid = store.submit(RunSpec("q1a", "1d-1", dict(Q1), owner="ann"))

    def full_disk(self, model, config, name="model", **meta):
        (self.run_dir / f".{name}.safetensors.tmp").write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(worker_mod.RunContext, "save_checkpoint", full_disk)
    assert worker_mod.main(str(runs_dir / rid)) == 1     # the worker, in this process
    st = store.status(rid)
    assert st["state"] == "failed" and "disk is full" in st["reason"] and str(ROOT) not in st["reason"]
    assert not list((runs_dir / rid).glob(".*.tmp"))
    assert store.queue_summary()["failed"] == 1 and store.list()[0]["id"] == rid


def test_failure_reasons_are_plain_and_pathless():
    assert "out of memory" in worker_mod.failure_reason(MemoryError())
    assert "out of memory" in worker_mod.failure_reason(
        RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried..."))
    reason = worker_mod.failure_reason(ValueError(f"bad thing in {ROOT}/core/x.py"))
    assert str(ROOT) not in reason and "./core/x.py" in reason


def test_worker_memory_limit_turns_a_huge_allocation_into_out_of_memory(tmp_path):
    code = ("import torch\nfrom core.engine import worker\nassert worker.limit_memory()\n"
            "try:\n    torch.empty(2**31 + 2**30, dtype=torch.float32).fill_(1)\n    print('ALLOCATED')\n"
            "except BaseException as e:\n    print('REASON', worker.failure_reason(e))\n")
    env = {**os.environ, "ARLAB_WORKER_MEM_MB": "256", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "REASON out of memory" in out.stdout, out.stdout + out.stderr


def test_the_servers_pump_starts_the_next_run_after_a_kill_with_no_page_open(runs_dir, monkeypatch):
    import signal

    from ui.server import start_pump

    monkeypatch.setenv("ARLAB_MAX_WORKERS", "1")
    store = make_store(runs_dir)
    first = store.submit(RunSpec("q1a", "1d-2", {"epochs": 200}, owner="ann"))
    second = store.submit(RunSpec("q1a", "1d-1", dict(Q1), owner="bob"))
    assert store.status(second)["state"] == "queued"
    os.killpg(store.status(first)["handle"]["pid"], signal.SIGKILL)
    start_pump(str(runs_dir), store)                    # what the server starts once; no page polls here
    deadline = time.time() + 60
    while store.status(second)["state"] == "queued" and time.time() < deadline:
        time.sleep(0.3)
    assert store.status(first)["state"] == "failed" and store.status(second)["state"] in ("running", "done")
    while store.status(second)["state"] == "running" and time.time() < deadline:
        time.sleep(0.3)


def test_the_pump_works_on_the_pages_store_so_the_sidebar_says_why_a_start_was_refused(runs_dir):
    """The server's pump thread pumps the very store object the pages read (it once pumped a second store of the
    same folder: a launcher set on the pages' store went unused by the pump, and why the cluster refused a start in
    the pump never reached `store().unavailable`, which the sidebar shows as "Last try")."""
    import ui
    from core.engine.spawn import LauncherUnavailable
    from tests.conftest import wait_for

    class Refusing:
        name, cluster, tried = "test-cluster", True, []

        def health(self):
            return True, "runs are placed by the test cluster"

        def start(self, run_dir, threads, env=None):
            self.tried.append(Path(run_dir).name)
            raise LauncherUnavailable("the test cluster has no room")

        def alive(self, run_dir, handle):
            return False

        def stop(self, run_dir, handle):
            pass

    runs = ui.store()
    runs.launcher = Refusing()
    rid = runs.submit(RunSpec("q1a", "1d-1", dict(Q1), owner="ann"), start=False)
    wait_for(lambda: rid in Refusing.tried, timeout=30, what="the server's pump to try the start")
    assert runs.status(rid)["state"] == "queued"        # refused, not lost
    assert runs.unavailable == "the test cluster has no room"   # what the sidebar's "Last try" reads


def test_budget_stops_a_real_run_keeping_what_it_learned(runs_dir):
    store = make_store(runs_dir, policy=Policy(slots=1, budget_s=2))
    rid = store.submit(RunSpec("q1a", "1d-2", {"epochs": 200}, owner="ann"))
    deadline = time.time() + 120
    while not any(e["type"] == "train" for e in store.events(rid)[0]) and time.time() < deadline:
        time.sleep(0.2)                                # training has begun (and the 2 s budget is spent)
    while store.status(rid)["state"] in ("queued", "running") and time.time() < deadline:
        store.pump()
        time.sleep(0.5)
    st = store.status(rid)
    assert st["state"] == "cancelled" and "budget" in st["reason"], st
    assert any(e["type"] == "train" for e in store.events(rid)[0])


# ------------------------------------------------------------------------------------------- pages (AppTest)
_page = open_page   # tests/conftest.py


def test_only_the_owner_may_cancel_or_delete(runs_dir):
    store = make_store(runs_dir, policy=Policy(slots=1))
    rid = store.submit(RunSpec("q1a", "1d-2", {"epochs": 200}, owner="b:ann", owner_name="ann"))
    try:
        assert any("not yours to open" in w.value for w in _page("pages/runs.py", "bob", {"run": rid}).warning)
        bob = _page("pages/runs.py", "bob", {"run": rid, "share": store.share(rid)})   # a link Ann shared
        assert not [b for b in bob.button if b.label == "Cancel"]
        assert next(b for b in bob.button if b.label == "Delete run").disabled
        assert any("ann's run" in m.value for m in bob.markdown)
        assert not _page("pages/q1_1d.py", "bob").get("plotly_chart")   # Bob's Q1 page shows no run of Ann's
        ann = _page("pages/runs.py", "ann", {"run": rid})
        cancel = next(b for b in ann.button if b.label == "Cancel")
        cancel.click().run()
        assert (runs_dir / rid / "cancel").exists() or store.status(rid)["state"] == "cancelled"
    finally:
        store.cancel(rid)
        deadline = time.time() + 60
        while store.status(rid)["state"] == "running" and time.time() < deadline:
            time.sleep(0.3)


def test_pages_keep_working_with_a_corrupt_status(runs_dir):
    store, launcher = fake_store(runs_dir, slots=2, owner_running=None)
    broken, fine = submit(store, ""), submit(store, "")
    for rid in (broken, fine):
        launcher.live.discard(rid)
        store.set_status(rid, state="cancelled", started=time.time() - 5, ended=time.time())
    (runs_dir / broken / "status.json").write_bytes(b"\x00\xff garbage")
    at = _page("pages/runs.py", "ann")
    table = at.dataframe[0].value
    states = dict(zip(table["run"], table["state"]))
    assert "failed" in states[broken] and "cancelled" in states[fine]
    _page("pages/home.py", "ann")
    _page("pages/q1_1d.py", "ann")


def test_an_unreachable_cluster_is_said_plainly_and_runs_stay_queued(runs_dir):
    pytest.importorskip("ray.job_submission")
    from core.engine.ray_launcher import RayJobLauncher

    store = make_store(runs_dir, launcher=RayJobLauncher("http://127.0.0.1:9"), policy=Policy(slots=4))
    rid = store.submit(RunSpec("q1a", "1d-1", dict(Q1), owner="ann"))
    assert store.status(rid)["state"] == "queued" and "does not answer" in store.unavailable
    ok, msg = store.launcher.health()
    assert not ok and "127.0.0.1:9" in msg and "wait in the queue" in msg
    assert not RayJobLauncher("").health()[0]           # no address: said, not raised
