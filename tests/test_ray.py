"""Runs on a real local Ray head (127.0.0.1, started once for the module and stopped at its end): end to end, cancel,
a killed job, the head not answering and answering again with runs queued, more runs than the cluster has room for.
Select with `-m ray`."""
import os
import shutil
import signal
import socket
import threading
from pathlib import Path

import pytest

from bench.server import free_port
from core.engine import Policy, RunSpec
from core.lab import store as make_store
from tests.conftest import wait_for

pytest.importorskip("ray.job_submission")
pytestmark = pytest.mark.ray
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


class Gate:
    """A door on 127.0.0.1 in front of the head's dashboard port, forwarding bytes both ways: shut() refuses new
    connections and cuts the open ones (to the app, exactly a head that went away: connection refused), open()
    answers on the same port again. The head itself keeps running, so the outage costs no second start."""

    def __init__(self, target: int):
        self.target, self.port = target, free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self._listener, self._conns, self._lock = None, [], threading.Lock()
        self.open()

    def open(self):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        srv.settimeout(0.2)
        self._listener = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv):
        while self._listener is srv:
            try:
                inside, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            inside.settimeout(None)
            try:
                outside = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                inside.close()
                continue
            outside.settimeout(None)
            with self._lock:
                self._conns += [inside, outside]
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def shut(self):
        srv, self._listener = self._listener, None
        if srv is None:   # shut already
            return
        srv.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def gate(head):
    g = Gate(int(head.address.rsplit(":", 1)[1]))
    yield g
    g.shut()


def ray_store_at(address, runs_dir, monkeypatch):
    from core.engine.ray_launcher import RayJobLauncher

    monkeypatch.setenv("ARLAB_LAUNCHER", "ray")
    monkeypatch.setenv("ARLAB_RAY_ADDRESS", address)
    return make_store(runs_dir, launcher=RayJobLauncher(address), policy=Policy(slots=8, owner_running=None, grace_s=5))


@pytest.fixture
def ray_store(head, runs_dir, monkeypatch):
    return ray_store_at(head.address, runs_dir, monkeypatch)


def drive(store, until, timeout=240):
    """Pump (as the server's pump thread does) until `until()` or the timeout."""
    wait_for(until, timeout, what="the runs on the cluster", every=0.5, step=store.pump)


def state(store, rid):
    return store.status(rid).get("state")


def test_runs_wait_while_the_head_does_not_answer_then_more_than_the_cluster_holds_all_end_done(
        head, gate, runs_dir, monkeypatch):
    """While the head does not answer, runs stay queued (the launcher says why). When it answers again, a Q1, a Q2
    and another Q1 run on the 2-CPU cluster (1 CPU a job) all end done, at most two at once (the third waited in the
    cluster), each with its events and checkpoint; Ray's dashboard shows every job's runtime_env: the worker is
    handed the allow-listed settings only, never the instructor key."""
    from ray.job_submission import JobSubmissionClient

    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "s3cret-key")
    monkeypatch.setenv("ARLAB_RUN_BUDGET_S", "1234")
    store = ray_store_at(gate.address, runs_dir, monkeypatch)
    gate.shut()
    try:
        rids = [store.submit(RunSpec("q1a", "1d-1", {"epochs": 2}, owner="ann")),
                store.submit(RunSpec("q2a", "shapes", {"epochs": 1, "subset": 300.0, "filters": 16, "layers": 2,
                                                       "kernel_size": 3}, owner="bob")),
                store.submit(RunSpec("q1a", "1d-1", {"epochs": 2}, owner="cy"))]
        store.pump()
        assert [state(store, r) for r in rids] == ["queued"] * 3
        assert "does not answer" in store.unavailable
        ok, msg = store.launcher.health()
        assert not ok and "wait in the queue" in msg
    finally:
        gate.open()
    client, most = JobSubmissionClient(head.address), 0

    def all_ended():
        nonlocal most
        jobs = {j.submission_id: j.status.value for j in client.list_jobs()}
        most = max(most, sum(jobs.get(r) == "RUNNING" for r in rids))
        return all(state(store, r) not in ("queued", "running") for r in rids)

    drive(store, all_ended)
    assert [state(store, r) for r in rids] == ["done"] * 3
    assert most <= 2      # 2 CPUs, 1 per job: the others waited in the cluster
    for rid in rids:
        st = store.status(rid)
        assert st["handle"]["launcher"] == "ray" and st["handle"]["job"] == rid and st.get("host")
        kinds = {e["type"] for e in store.events(rid)[0]}
        assert {"train", "test", "result"} <= kinds
        assert (runs_dir / rid / "model.safetensors").exists()
    env = (client.get_job_info(rids[0]).runtime_env or {}).get("env_vars", {})
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
