"""The launcher seam: how a run's worker process is started, checked and stopped.

A launcher hands back a *handle*, a small JSON-able dict stored in the run's status.json; every later question
about the worker (is it alive? stop it) goes through the same launcher with that handle, never through a bare
pid. The local process launcher is the default; a cluster launcher (e.g. Ray Jobs) implements the same three
methods and plugs in through `RunStore(launcher=...)` without touching pages or questions.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Protocol

from .. import ROOT
from .spawn import WORKER_MODULE, WORKER_SETTINGS, LauncherUnavailable, worker_env  # noqa: F401 (re-exported)

def launcher_from_env():
    """The launcher the settings name: ARLAB_LAUNCHER=local (default) or ray (with ARLAB_RAY_ADDRESS)."""
    kind = os.environ.get("ARLAB_LAUNCHER", "local") or "local"
    if kind == "local":
        return LocalProcessLauncher()
    if kind == "ray":
        from .ray_launcher import RayJobLauncher

        return RayJobLauncher(cpus=float(os.environ.get("ARLAB_RAY_CPUS", "1") or 1),
                              gpus=float(os.environ.get("ARLAB_RAY_GPUS", "0") or 0))
    raise ValueError(f"ARLAB_LAUNCHER={kind!r}: use local or ray")


class Launcher(Protocol):
    name: str

    def start(self, run_dir: Path, threads: int, env: dict | None = None) -> dict:
        """Start the worker for `run_dir` (python -m core.engine.worker RUN_DIR) with `threads` torch threads and
        `env` added to its environment (e.g. CUDA_VISIBLE_DEVICES: the GPU it is pinned to) -> its handle."""

    def alive(self, run_dir: Path, handle: dict) -> bool:
        """Is the worker behind `handle` still running this run?"""

    def stop(self, run_dir: Path, handle: dict) -> None:
        """End the worker now (a cancel file asks politely first; this is the force stop)."""


def pid_alive(pid: int | None, run_dir: Path | None = None, marker: str = "") -> bool:
    """True if `pid` is a live (non-zombie) process, and, on Linux, the worker of `run_dir` (or the warm worker whose
    command line carries `marker`, its token)."""
    if not pid:
        return False
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            stat = (proc / "stat").read_text()
            if stat[stat.rfind(")") + 2] in "ZX":
                return False
            if run_dir is not None or marker:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return WORKER_MODULE in cmd and (marker or str(Path(run_dir).name)) in cmd
            return True
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
    if sys.platform.startswith("linux"):
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


class LocalProcessLauncher:
    """Each run is a fresh local Python process in its own session (never a fork of the server).

    Warm start (ARLAB_WARM_WORKERS, default 1; 0 = off): a few such processes are started ahead of time, each with
    torch and the lab imported and warmed up, waiting in the runs folder's pool (POOL, warm.py's worker side). A run
    is handed to a waiting one (claimed by an atomic rename, so two pumps never hand it two runs); it runs that one
    run and exits, and a new one is started to wait in its place. No waiting worker alive: the run starts cold,
    as without the pool. A run handed to a worker that died before it began is queued again (RunStore.recover)."""
    name = "local"

    def __init__(self, warm: int | None = None):
        raw = os.environ.get("ARLAB_WARM_WORKERS", "")
        self.warm = max(0, int(raw)) if warm is None and raw.strip() else (1 if warm is None else warm)

    def _env(self, threads: int, env: dict | None) -> dict:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARLAB_")}, **worker_env(os.environ),
               **(env or {}), "ARLAB_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        return env

    def start(self, run_dir: Path, threads: int, env: dict | None = None) -> dict:
        run_dir = Path(run_dir)
        if self.warm:
            handle = self._hand_to_warm(run_dir, threads, env or {})
            self.keep_warm(run_dir.parent)
            if handle:
                return handle
        with open(run_dir / "worker.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(run_dir)], cwd=str(ROOT),
                                    env=self._env(threads, env), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return {"launcher": self.name, "pid": proc.pid}

    # -- the warm pool: root/.warm/<token>.wait (its pid, while it waits), .claimed (handed a run), .run (the run)
    def keep_warm(self, root: Path) -> int:
        """Start warm workers until `self.warm` wait in the pool of `root` (dead ones are cleared away). -> started"""
        if not self.warm:
            return 0
        pool = Path(root) / POOL
        waiting = 0
        for f in pool.glob("*.wait"):
            if warm_alive(f):
                waiting += 1
            else:
                f.unlink(missing_ok=True)
        for _ in range(self.warm - waiting):
            pool.mkdir(parents=True, exist_ok=True)
            token = uuid.uuid4().hex[:12]
            with open(pool / f"{token}.log", "ab") as log:
                proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, "--warm", str(pool), token],
                                        cwd=str(ROOT), env=self._env(1, None), stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            (pool / f"{token}.wait").write_text(str(proc.pid))
        return max(0, self.warm - waiting)

    def _hand_to_warm(self, run_dir: Path, threads: int, env: dict) -> dict | None:
        pool = run_dir.parent / POOL
        for f in sorted(pool.glob("*.wait"), key=lambda f: not f.with_suffix(".ready").exists()):  # ready first
            token, claimed = f.stem, f.with_suffix(".claimed")
            try:
                os.rename(f, claimed)   # atomic: one claimant wins, the worker's own exit included
            except FileNotFoundError:
                continue
            if not warm_alive(claimed):
                claimed.unlink(missing_ok=True)
                continue
            order = {"run_dir": str(run_dir), "threads": threads, "env": env}
            tmp = pool / f".{token}.run.tmp"
            tmp.write_text(json.dumps(order))
            os.replace(tmp, pool / f"{token}.run")
            return {"launcher": self.name, "pid": int(claimed.read_text()), "warm": token}
        return None

    def alive(self, run_dir: Path, handle: dict) -> bool:
        handle = handle or {}
        if handle.get("warm"):
            return pid_alive(handle.get("pid"), None, marker=handle["warm"])
        return pid_alive(handle.get("pid"), run_dir)

    def stop(self, run_dir: Path, handle: dict) -> None:
        pid = (handle or {}).get("pid")
        if self.alive(run_dir, handle):
            try:
                os.killpg(pid, signal.SIGKILL)  # its own session: the worker and anything it started
            except OSError:
                pass


POOL = ".warm"


def warm_alive(f: Path) -> bool:
    """Is the warm worker a pool file names (<token>.wait/.claimed, holding its pid) alive?"""
    try:
        pid = int(Path(f).read_text() or 0)
    except (OSError, ValueError):
        return False
    return pid_alive(pid, None, marker=Path(f).stem)
