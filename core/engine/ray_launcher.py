"""Runs on a Ray cluster: each run is a Ray job, placed by the cluster on a node with a free share.

    ARLAB_LAUNCHER=ray ARLAB_RAY_ADDRESS=http://HEAD:8265 ARLAB_RUNS_DIR=/shared/runs bash lab.sh app

The job's entrypoint is the same worker as on one machine (`python -m core.engine.worker RUN_DIR`, run from the
project folder, its output appended to RUN_DIR/worker.log); the run id is the job's submission id; the run's CPU
(and GPU) share are the job's resources, so Ray holds a job until a node has them. Every node must see the runs
folder and the project at the same paths (shared storage), and have the same Python environment.

The app's queue still decides *who* goes next (owners, caps, fairness: policy.py); Ray decides *where* and *when*
there is room. While the head does not answer, nothing is submitted (runs stay queued, nothing is lost) and a run
whose job vanished before its worker began goes back to the queue.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from .. import ROOT
from .spawn import WORKER_MODULE, LauncherUnavailable, worker_env

RUNNING = ("PENDING", "RUNNING")
STATUS_TTL_S = 1.0


class RayJobLauncher:
    name = "ray"
    cluster = True   # it decides where and when runs start; a run whose job vanished before it began is re-queued

    def __init__(self, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0):
        self.address = address or os.environ.get("ARLAB_RAY_ADDRESS") or ""
        self.cpus, self.gpus = cpus, gpus
        self._client, self._health, self._jobs = None, (0.0, True, ""), (0.0, {})

    def client(self):
        """The job client, made on first use (and again after the head was unreachable)."""
        if not self.address:
            raise LauncherUnavailable("ARLAB_LAUNCHER=ray needs ARLAB_RAY_ADDRESS (the head's dashboard address, "
                                      "e.g. http://127.0.0.1:8265)")
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise LauncherUnavailable("Ray is not installed: `pip install -r requirements-ray.txt`") from None
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as e:  # noqa: BLE001 - connection refused, bad address, wrong version
                raise LauncherUnavailable(f"the Ray cluster at {self.address} does not answer ({_short(e)})") from None
        return self._client

    def _call(self, fn, *args, **kw):
        try:
            return fn(self.client(), *args, **kw)
        except LauncherUnavailable:
            raise
        except Exception as e:  # noqa: BLE001
            if _is_connection_error(e):
                self._client = None
                raise LauncherUnavailable(f"the Ray cluster at {self.address} does not answer ({_short(e)})") from None
            raise

    def health(self) -> tuple[bool, str]:
        """(reachable, a line for the sidebar); asked at most every 5 s."""
        t, ok, msg = self._health
        if time.time() - t > 5:
            try:
                self._snapshot()
                ok, msg = True, f"runs are placed by the Ray cluster at {self.address}"
            except LauncherUnavailable as e:
                ok, msg = False, f"{e}; runs wait in the queue until it answers"
            self._health = (time.time(), ok, msg)
        return ok, msg

    def start(self, run_dir: Path, threads: int, env: dict | None = None) -> dict:
        run_dir = Path(run_dir)
        entry = (f"cd {shlex.quote(str(ROOT))} && exec {shlex.quote(sys.executable)} -m {WORKER_MODULE} "
                 f"{shlex.quote(str(run_dir))} >> {shlex.quote(str(run_dir / 'worker.log'))} 2>&1")
        env_vars = worker_env(os.environ)
        env_vars.update({**(env or {}), "ARLAB_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
                         "PYTHONPATH": str(ROOT)})
        env_vars.pop("CUDA_VISIBLE_DEVICES", None)          # Ray sets it for the GPUs it gives the job
        kw = {"entrypoint_num_cpus": self.cpus}
        if self.gpus:
            kw["entrypoint_num_gpus"] = self.gpus
        try:
            job = self._call(lambda c: c.submit_job(entrypoint=entry, submission_id=run_dir.name,
                                                    runtime_env={"env_vars": env_vars}, **kw))
        except LauncherUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. the id exists already (a submission that did land)
            if "already exists" not in str(e):
                raise
            job = run_dir.name
        self._jobs = (0.0, {})   # the next question about it asks the cluster afresh
        return {"launcher": self.name, "job": job, "address": self.address}

    def _snapshot(self) -> dict[str, str]:
        """Every job's status from one list_jobs call, kept STATUS_TTL_S: a pump asks about every running run, and
        one request per run per pump (from each process that pumps) kept the head's dashboard busy."""
        t, jobs = self._jobs
        if time.time() - t > STATUS_TTL_S:
            jobs = {j.submission_id: str(j.status.value) for j in self._call(lambda c: c.list_jobs())}
            self._jobs = (time.time(), jobs)
        return jobs

    def job_status(self, handle: dict) -> str:
        """PENDING | RUNNING | STOPPED | SUCCEEDED | FAILED, or GONE when the cluster does not know the job."""
        known = self._snapshot().get(handle.get("job"))
        if known:
            return known
        try:
            return str(self._call(lambda c: c.get_job_status(handle["job"])).value)
        except LauncherUnavailable:
            raise
        except Exception as e:  # noqa: BLE001
            if "does not exist" in str(e) or "not found" in str(e).lower():
                return "GONE"
            raise

    def alive(self, run_dir: Path, handle: dict) -> bool:
        """Is its job pending or running? While the head does not answer, a job is taken to be alive (nothing is
        failed for an outage)."""
        try:
            return self.job_status(handle or {}) in RUNNING
        except LauncherUnavailable:
            return True

    def ended_reason(self, run_dir: Path, handle: dict) -> str:
        """Why a job ended without its worker writing a final state (for the run's "failed" reason)."""
        try:
            info = self._call(lambda c: c.get_job_info(handle["job"]))
            return f"its Ray job {handle['job']} ended {info.status.value}: {(info.message or '').strip()[:300]}"
        except Exception:  # noqa: BLE001
            return f"its Ray job {handle.get('job')} vanished from the cluster (the head restarted or the job was " \
                   "deleted)"

    def stop(self, run_dir: Path, handle: dict) -> None:
        try:
            self._call(lambda c: c.stop_job(handle["job"]))
        except Exception:  # noqa: BLE001 - already ended, or the head is gone (then so is the job)
            pass

    def job_url(self, handle: dict) -> str:
        return f"{self.address.rstrip('/')}/#/jobs/{handle.get('job')}"


class LocalHead:
    """A Ray head on this machine, on 127.0.0.1 (for trying the launcher, tests and benchmarks): start(), stop(),
    start() again. `address` is its dashboard address, what ARLAB_RAY_ADDRESS takes. nice: its CPU priority
    (`ray start` under `nice -n`), so that on the app's own machine the server answers first."""

    def __init__(self, cpus: int = 2, nice: int = 0):
        import socket
        import tempfile

        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.port, self.dash, self.cpus, self.nice = ports[0], ports[1], cpus, nice
        self.tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")   # short: Ray's socket paths have a length limit
        self.address = f"http://127.0.0.1:{self.dash}"
        self.ray = str(Path(sys.executable).with_name("ray"))

    def start(self, timeout: float = 120) -> "LocalHead":
        import subprocess

        # nice: on the app's own machine, Ray's daemons (and the jobs they start) queue behind the app's server
        subprocess.run(["nice", "-n", str(self.nice), self.ray, "start", "--head", "--node-ip-address", "127.0.0.1",
                        "--port", str(self.port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dash), "--num-cpus",
                        str(self.cpus), "--temp-dir", self.tmp, "--disable-usage-stats", "--include-dashboard", "true"],
                       check=True, capture_output=True, timeout=180)
        deadline, launcher = time.time() + timeout, RayJobLauncher(self.address)
        while not launcher.health()[0]:
            if time.time() > deadline:
                raise RuntimeError(f"the local Ray head at {self.address} did not answer within {timeout:.0f} s")
            time.sleep(1)
            launcher._health = (0.0, False, "")
        return self

    def stop(self) -> None:
        import subprocess

        subprocess.run([self.ray, "stop", "--force"], capture_output=True, timeout=120)


def _is_connection_error(e: BaseException) -> bool:
    text = f"{type(e).__name__}: {e}".lower()
    return any(w in text for w in ("connection", "connect", "refused", "timed out", "timeout", "unreachable",
                                   "failed to establish", "max retries"))


def _short(e: BaseException) -> str:
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__


if __name__ == "__main__":   # python -m core.engine.ray_launcher: say at start-up whether the cluster answers
    ok, msg = RayJobLauncher().health()
    print(f"lab.sh: {msg}", file=sys.stdout if ok else sys.stderr)
