"""Run records on disk, the queue, and the workers that execute them.

A run is a folder `runs/<id>/`:
    spec.json      what to run (a RunSpec), written once
    status.json    state and reason, replaced atomically (queued | running | done | cancelled | failed)
    events.jsonl   appended by the worker: minibatch losses, test losses, artifacts, the result
    cancel         present when a stop was asked for
    worker.log     the worker's stdout/stderr (tracebacks land here)
Everything about a run lives on disk, so reloads, other browsers and server restarts find it again.

The queue: `RunStore.pump()` recovers runs whose worker died, then starts queued runs (oldest first) while
fewer than `max_concurrent` are running. Every worker is a fresh `python -m core.worker RUN_DIR` process
(never a fork of the server), started by a launcher; the local process launcher is the default.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import ROOT

STATES = ("queued", "running", "done", "cancelled", "failed")
ACTIVE = ("queued", "running")


class InvalidSpec(ValueError):
    """The run was refused before anything started; `errors` maps field -> message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass
class RunSpec:
    question: str                 # e.g. "q1a"
    dataset: str                  # e.g. "1d-1"
    hparams: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"          # auto | cpu | cuda | mps
    preset: str = ""              # the preset the hyperparameters started from (for display)
    label: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def validated(self) -> "RunSpec":
        """A copy with cleaned hyperparameters; raises InvalidSpec naming every problem."""
        from . import questions
        from .questions.base import InvalidHyperparameters

        try:
            q = questions.get(self.question)
        except KeyError as e:
            raise InvalidSpec({"question": str(e.args[0])}) from None
        errors = {}
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**31:
            errors["seed"] = "must be a whole number between 0 and 2^31-1"
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            errors["device"] = "must be auto, cpu, cuda or mps"
        try:
            hp = q.validate(self.hparams, self.dataset)
        except InvalidHyperparameters as e:
            errors.update(e.errors)
            hp = None
        if errors:
            raise InvalidSpec(errors)
        return RunSpec(**{**self.to_dict(), "hparams": hp})


# ----------------------------------------------------------------------------------------------- small file helpers
def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def read_events(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete JSON lines after byte `offset`, and the offset to continue from (a half-written line waits)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    events = []
    for line in chunk[:end].splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line torn by a crash mid-write: skip it
    return events, offset + end


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
                return "core.worker" in cmd and str(Path(run_dir).name) in cmd
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


# ----------------------------------------------------------------------------------------------- the launcher seam
class LocalProcessLauncher:
    """Starts each run as a fresh local Python process in its own session (not a fork of the server)."""

    def start(self, run_dir: Path, threads: int) -> int:
        env = {**os.environ, "ARLAB_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        log = open(Path(run_dir) / "worker.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "core.worker", str(run_dir)], cwd=str(ROOT), env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        return proc.pid


# ----------------------------------------------------------------------------------------------- the store
def default_root() -> Path:
    return Path(os.environ.get("ARLAB_RUNS_DIR") or ROOT / "runs")


def default_max_concurrent() -> int:
    env = os.environ.get("ARLAB_MAX_WORKERS")
    if env:
        return max(1, int(env))
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:
        return 1


class RunStore:
    def __init__(self, root: Path | str | None = None, max_concurrent: int | None = None, launcher=None):
        self.root = Path(root) if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self.launcher = launcher or LocalProcessLauncher()

    # -- paths and reads ------------------------------------------------------------------------------------------
    def dir(self, run_id: str) -> Path:
        d = self.root / run_id
        if not run_id or "/" in run_id or run_id.startswith(".") or not (d / "spec.json").exists():
            raise KeyError(f"no run {run_id!r}")
        return d

    def ids(self) -> list[str]:
        """Run ids, newest first (ids start with a sortable timestamp)."""
        return sorted((p.name for p in self.root.iterdir() if (p / "spec.json").exists()), reverse=True)

    def spec(self, run_id: str) -> RunSpec:
        return RunSpec.from_dict(read_json(self.dir(run_id) / "spec.json"))

    def status(self, run_id: str) -> dict:
        return read_json(self.dir(run_id) / "status.json", {"state": "queued"})

    def events(self, run_id: str, offset: int = 0) -> tuple[list[dict], int]:
        return read_events(self.dir(run_id) / "events.jsonl", offset)

    def list(self, question: str | None = None, dataset: str | None = None) -> list[dict]:
        out = []
        for rid in self.ids():
            spec = read_json(self.root / rid / "spec.json", {})
            if (question and spec.get("question") != question) or (dataset and spec.get("dataset") != dataset):
                continue
            out.append({"id": rid, "spec": spec, "status": read_json(self.root / rid / "status.json", {"state": "queued"})})
        return out

    # -- writes -----------------------------------------------------------------------------------------------------
    def set_status(self, run_id: str, **fields) -> dict:
        d = self.dir(run_id)
        st = {**read_json(d / "status.json", {}), **fields, "updated": time.time()}
        write_json_atomic(d / "status.json", st)
        return st

    def submit(self, spec: RunSpec, start: bool = True) -> str:
        """Validate, write the run folder, queue it and (by default) start workers. Nothing is written if invalid."""
        spec = spec.validated()
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{spec.question}-{uuid.uuid4().hex[:6]}"
        d = self.root / run_id
        d.mkdir(parents=True)
        write_json_atomic(d / "spec.json", spec.to_dict())
        write_json_atomic(d / "status.json", {"state": "queued", "created": time.time(), "updated": time.time()})
        (d / "events.jsonl").touch()
        if start:
            self.pump()
        return run_id

    def cancel(self, run_id: str) -> str:
        """Queued runs are cancelled at once; running ones stop at the next minibatch, keeping what they have."""
        d = self.dir(run_id)
        with self._lock():
            state = self.status(run_id).get("state")
            if state == "queued":
                self.set_status(run_id, state="cancelled", reason="cancelled before it started", ended=time.time())
                return "cancelled"
            if state == "running":
                (d / "cancel").touch()
                return "cancelling"
        return state

    def delete(self, run_id: str) -> None:
        d = self.dir(run_id)
        state = self.status(run_id).get("state")
        if state == "running" and pid_alive(self.status(run_id).get("pid"), d):
            raise RuntimeError("this run is still running: cancel it first, then delete it")
        shutil.rmtree(d)

    # -- the queue ----------------------------------------------------------------------------------------------------
    @contextmanager
    def _lock(self):
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def recover(self) -> list[str]:
        """Mark runs whose worker is gone as failed (a killed worker, a crash, a machine restart)."""
        failed = []
        for rid in self.ids():
            st = read_json(self.root / rid / "status.json", {})
            if st.get("state") == "running" and not pid_alive(st.get("pid"), self.root / rid):
                # the worker may have just finished and written its final state: re-read before judging
                st = read_json(self.root / rid / "status.json", {})
                if st.get("state") == "running":
                    self.set_status(rid, state="failed", ended=time.time(),
                                    reason="the worker process ended without finishing (killed, crashed, or the "
                                           "machine restarted); see worker.log")
                    failed.append(rid)
        return failed

    def pump(self) -> list[str]:
        """Recover dead runs, then start queued runs up to the concurrency limit. Returns the ids started."""
        from .device import threads_per_run

        started = []
        with self._lock():
            self.recover()
            entries = [(rid, read_json(self.root / rid / "status.json", {})) for rid in self.ids()]
            running = sum(1 for _, st in entries if st.get("state") == "running")
            queued = [rid for rid, st in reversed(entries) if st.get("state") == "queued"]  # oldest first
            for rid in queued[: max(0, self.max_concurrent - running)]:
                pid = self.launcher.start(self.root / rid, threads_per_run(self.max_concurrent))
                self.set_status(rid, state="running", pid=pid, started=time.time())
                started.append(rid)
        return started

    def queue_summary(self) -> dict:
        counts = {s: 0 for s in STATES}
        for rid in self.ids():
            counts[read_json(self.root / rid / "status.json", {}).get("state", "queued")] += 1
        return counts
