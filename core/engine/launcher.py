"""The launcher seam: how a run's worker process is started, checked and stopped.

A launcher hands back a *handle*, a small JSON-able dict stored in the run's status.json; every later question
about the worker (is it alive? stop it) goes through the same launcher with that handle, never through a bare
pid. The local process launcher is the default; a cluster launcher (e.g. Ray Jobs) implements the same three
methods and plugs in through `RunStore(launcher=...)` without touching pages or questions.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def pid_alive(pid: int | None, run_dir: Path | None = None) -> bool:
    """True if `pid` is a live (non-zombie) process, and, on Linux, the worker of `run_dir`."""
    if not pid:
        return False
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            stat = (proc / "stat").read_text()
            if stat[stat.rfind(")") + 2] in "ZX":
                return False
            if run_dir is not None:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return WORKER_MODULE in cmd and str(Path(run_dir).name) in cmd
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
    """Each run is a fresh local Python process in its own session (never a fork of the server)."""
    name = "local"

    def start(self, run_dir: Path, threads: int, env: dict | None = None) -> dict:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARLAB_")}, **worker_env(os.environ),
               **(env or {}), "ARLAB_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        with open(Path(run_dir) / "worker.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(run_dir)], cwd=str(ROOT), env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        return {"launcher": self.name, "pid": proc.pid}

    def alive(self, run_dir: Path, handle: dict) -> bool:
        return pid_alive((handle or {}).get("pid"), run_dir)

    def stop(self, run_dir: Path, handle: dict) -> None:
        pid = (handle or {}).get("pid")
        if self.alive(run_dir, handle):
            try:
                os.killpg(pid, signal.SIGKILL)  # its own session: the worker and anything it started
            except OSError:
                pass
