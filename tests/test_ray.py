"""Runs on a real local Ray head (127.0.0.1, started and stopped here): end to end, cancel, a killed job, the head
going away and coming back with runs queued, more runs than the cluster has room for.  Select with `-m ray`."""
import os
import shutil
import signal
from pathlib import Path

import pytest

from core.engine import Policy, RunSpec
from core.lab import store as make_store
from tests.conftest import wait_for

pytest.importorskip("ray.job_submission")
pytestmark = pytest.mark.ray
Q1 = {"epochs": 1}
LONG = {"epochs": 400}


@pytest.fixture(scope="module")
def head():
    from core.engine.ray_launcher import LocalHead

    h = LocalHead(cpus=2)
    if not Path(h.ray).exists():
        pytest.skip("the ray command is not installed")
    h.start()
    try:
        yield h
    finally:
        h.stop()
        shutil.rmtree(h.tmp, ignore_errors=True)


@pytest.fixture
def ray_store(head, runs_dir, monkeypatch):
    from core.engine.ray_launcher import RayJobLauncher

    monkeypatch.setenv("ARLAB_LAUNCHER", "ray")
    monkeypatch.setenv("ARLAB_RAY_ADDRESS", head.address)
    return make_store(runs_dir, launcher=RayJobLauncher(head.address),
                      policy=Policy(slots=8, owner_running=None, grace_s=5))


def drive(store, until, timeout=240):
    """Pump (as the server's pump thread does) until `until()` or the timeout."""
    wait_for(until, timeout, what="the runs on the cluster", every=0.5, step=store.pump)


def state(store, rid):
    return store.status(rid).get("state")


def test_a_q1_and_a_q2_run_end_to_end_and_the_job_holds_no_instructor_key(ray_store, head, runs_dir, monkeypatch):
    """Both runs end done on the cluster. Ray's dashboard shows every job's runtime_env: the worker is handed the
    allow-listed settings only."""
    from ray.job_submission import JobSubmissionClient

    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "s3cret-key")
    monkeypatch.setenv("ARLAB_RUN_BUDGET_S", "1234")
    q1 = ray_store.submit(RunSpec("q1a", "1d-1", Q1, owner="ann"))
    q2 = ray_store.submit(RunSpec("q2a", "shapes", {"epochs": 1, "subset": 300.0, "filters": 16, "layers": 2,
                                                    "kernel_size": 3}, owner="bob"))
    drive(ray_store, lambda: all(state(ray_store, r) not in ("queued", "running") for r in (q1, q2)))
    for rid in (q1, q2):
        st = ray_store.status(rid)
        assert st["state"] == "done", st
        assert st["handle"]["launcher"] == "ray" and st["handle"]["job"] == rid and st.get("host")
        kinds = {e["type"] for e in ray_store.events(rid)[0]}
        assert {"train", "test", "result"} <= kinds
        assert (runs_dir / rid / "model.safetensors").exists()
    env = (JobSubmissionClient(head.address).get_job_info(q1).runtime_env or {}).get("env_vars", {})
    assert env.get("ARLAB_RUN_BUDGET_S") == "1234" and "ARLAB_RUNS_DIR" in env   # what the worker needs
    assert "ARLAB_INSTRUCTOR_KEY" not in env and "s3cret-key" not in str(env)


def test_cancel_one_and_kill_another(ray_store):
    a = ray_store.submit(RunSpec("q1a", "1d-2", LONG, owner="ann"))
    b = ray_store.submit(RunSpec("q1a", "1d-2", LONG, owner="bob"))
    has_trained = lambda r: any(e["type"] == "train" for e in ray_store.events(r)[0])   # noqa: E731
    drive(ray_store, lambda: has_trained(a) and has_trained(b))
    assert ray_store.cancel(a) == "cancelling"
    os.kill(ray_store.status(b)["pid"], signal.SIGKILL)       # the worker, as the job's process
    drive(ray_store, lambda: state(ray_store, a) != "running" and state(ray_store, b) != "running")
    assert state(ray_store, a) == "cancelled"
    st = ray_store.status(b)
    assert st["state"] == "failed" and "Ray job" in st["reason"], st


def test_head_down_runs_wait_then_more_runs_than_the_cluster_holds_run_and_none_is_lost(ray_store, head):
    """While the head is down, runs stay queued (the launcher says why); when it is back, three runs on a 2-CPU
    cluster (1 CPU a job) all end done, at most two at once: the third waited in the cluster."""
    from ray.job_submission import JobSubmissionClient

    head.stop()
    try:
        rids = [ray_store.submit(RunSpec("q1a", "1d-1", {"epochs": 2}, owner=o)) for o in ("ann", "bob", "cy")]
        ray_store.pump()
        assert [state(ray_store, r) for r in rids] == ["queued"] * 3
        assert "does not answer" in ray_store.unavailable
        ok, msg = ray_store.launcher.health()
        assert not ok and "wait in the queue" in msg
    finally:
        head.start()
    client, most = JobSubmissionClient(ray_store.launcher.address), 0

    def all_ended():
        nonlocal most
        jobs = {j.submission_id: j.status.value for j in client.list_jobs()}
        most = max(most, sum(jobs.get(r) == "RUNNING" for r in rids))
        return all(state(ray_store, r) not in ("queued", "running") for r in rids)

    drive(ray_store, all_ended)
    assert [state(ray_store, r) for r in rids] == ["done"] * 3
    assert most <= 2      # 2 CPUs, 1 per job: the others waited in the cluster
