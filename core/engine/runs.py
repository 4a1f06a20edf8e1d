"""Run records on disk and the queue.

A run is a folder `runs/<id>/`:
    spec.json      what to run (a RunSpec), written once
    status.json    state and reason, replaced atomically (queued | running | done | cancelled | failed), and the
                   launcher's handle of its worker
    events.jsonl   appended by the worker: minibatch losses, test losses, artifacts, the result
    cancel         present when a stop was asked for
    worker.log     the worker's stdout/stderr (tracebacks land here)
Everything about a run lives on disk, so reloads, other browsers and server restarts find it again.

The queue: `RunStore.pump()` recovers runs whose worker died, then starts queued runs (oldest first) while
fewer than `max_concurrent` are running, each through the store's launcher (launcher.py). The store validates a
spec with the validator it is given (core.questions.validate): the engine itself knows no question.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import ROOT
from .launcher import Launcher, LocalProcessLauncher

# validator(question, dataset, hparams) -> cleaned hparams; raises ValueError (with `.errors`: {field: message})
Validator = Callable[[str, str, dict], dict]

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

    def validated(self, validator: Validator) -> "RunSpec":
        """A copy with cleaned hyperparameters; raises InvalidSpec naming every problem at once."""
        errors = {}
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**31:
            errors["seed"] = "must be a whole number between 0 and 2^31-1"
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            errors["device"] = "must be auto, cpu, cuda or mps"
        hp = None
        try:
            hp = validator(self.question, self.dataset, self.hparams)
        except ValueError as e:
            errors.update(getattr(e, "errors", None) or {"hparams": str(e)})
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
    """The run folders under `root` and their queue. `validator` (core.questions.validate) is needed to submit;
    reading, cancelling and pumping need none."""

    def __init__(self, root: Path | str | None = None, max_concurrent: int | None = None,
                 launcher: Launcher | None = None, validator: Validator | None = None):
        self.root = Path(root) if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self.launcher = launcher or LocalProcessLauncher()
        self.validator = validator

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

    def finished(self, questions, dataset: str | None = None, file: str = "model.safetensors") -> list[dict]:
        """Runs of these questions (and data set) that ended done and hold `file`, newest first: the list
        entries plus "dir"."""
        questions = (questions,) if isinstance(questions, str) else tuple(questions)
        return [{**r, "dir": self.root / r["id"]} for r in self.list(dataset=dataset)
                if r["spec"].get("question") in questions and r["status"].get("state") == "done"
                and (self.root / r["id"] / file).exists()]

    def handle(self, status: dict) -> dict:
        """The launcher's handle of a run's worker (older status files kept only a pid)."""
        return status.get("handle") or {"pid": status.get("pid")}

    def alive(self, run_id: str) -> bool:
        return self.launcher.alive(self.dir(run_id), self.handle(self.status(run_id)))

    # -- writes -----------------------------------------------------------------------------------------------------
    def set_status(self, run_id: str, **fields) -> dict:
        d = self.dir(run_id)
        st = {**read_json(d / "status.json", {}), **fields, "updated": time.time()}
        write_json_atomic(d / "status.json", st)
        return st

    def submit(self, spec: RunSpec, start: bool = True) -> str:
        """Validate, write the run folder, queue it and (by default) start workers. Nothing is written if invalid."""
        if self.validator is None:
            raise RuntimeError("this RunStore was made without a validator: pass validator=core.questions.validate")
        spec = spec.validated(self.validator)
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
        if state == "running" and self.alive(run_id):
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
            if st.get("state") == "running" and not self.launcher.alive(self.root / rid, self.handle(st)):
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
        from ..device import threads_per_run

        started = []
        with self._lock():
            self.recover()
            entries = [(rid, read_json(self.root / rid / "status.json", {})) for rid in self.ids()]
            running = sum(1 for _, st in entries if st.get("state") == "running")
            queued = [rid for rid, st in reversed(entries) if st.get("state") == "queued"]  # oldest first
            for rid in queued[: max(0, self.max_concurrent - running)]:
                handle = self.launcher.start(self.root / rid, threads_per_run(self.max_concurrent))
                self.set_status(rid, state="running", handle=handle, pid=handle.get("pid"), started=time.time())
                started.append(rid)
        return started

    def queue_summary(self) -> dict:
        counts = {s: 0 for s in STATES}
        for rid in self.ids():
            counts[read_json(self.root / rid / "status.json", {}).get("state", "queued")] += 1
        return counts
