"""Run records on disk and the queue.

A run is a folder `runs/<id>/`:
    spec.json      what to run (a RunSpec), written once
    status.json    state and reason, replaced atomically (queued | running | done | cancelled | failed), and the
                   launcher's handle of its worker
    events.jsonl   appended by the worker: minibatch losses, test losses, artifacts, the result
    cancel         present when a stop was asked for
    worker.log     the worker's stdout/stderr (tracebacks land here)
Everything about a run lives on disk, so reloads, other browsers and server restarts find it again.

    pinned         present when an instructor pinned the run for the class to see
    share          present when its owner made a share link: the token that link carries

Who sees what (`may_view`, `list`): a learner sees their own runs, pinned runs and runs of no owner (made on this
machine from the command line); an instructor sees all; a link that carries a run's share token opens that run.
Run ids are the store's own format (RUN_ID): anything else is no run, never a path.

The queue: `RunStore.pump()` recovers runs whose worker died, stops runs over their budget or past their cancel
grace, then starts waiting runs in the policy's fair order (policy.py: round robin across owners, per-owner caps)
while fewer than `slots` run, each through the store's launcher (launcher.py). The store validates a spec with the
validator it is given (core.questions.validate): the engine itself knows no question. Every read is defensive: one
bad file marks its own run failed and never breaks a listing, a page or the queue.
"""
from __future__ import annotations

import errno
import fcntl
import hmac
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import ROOT
from .launcher import Launcher, LauncherUnavailable, launcher_from_env
from .policy import Policy, estimate_wait, order, owner_of

# validator(question, dataset, hparams) -> cleaned hparams; raises ValueError (with `.errors`: {field: message})
Validator = Callable[[str, str, dict], dict]

STATES = ("queued", "running", "done", "cancelled", "failed")
RUN_ID = re.compile(r"\d{8}-\d{6}-[a-z0-9_]{1,24}-[0-9a-f]{6}")   # what submit makes: time, question, random
NAME_RE = re.compile(r"[\w .'@-]{0,40}")                     # how an owner's name may read (plain text)


def is_run_id(text) -> bool:
    return isinstance(text, str) and RUN_ID.fullmatch(text) is not None
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
    owner: str = ""               # who started it (a signed-in user or a name kept in the browser; "" = this machine)
    owner_name: str = ""          # how to show the owner
    init: str = ""                # continue training: a model source ("pretrained:NAME" | "run:ID") of this
                                  # question and data set whose weights the model starts from ("" = fresh)

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
        if not isinstance(self.owner, str) or len(self.owner) > 200:
            errors["owner"] = "must be a short text"
        if not isinstance(self.owner_name, str) or not NAME_RE.fullmatch(self.owner_name):
            errors["owner_name"] = "a name is at most 40 letters, digits, spaces or . ' @ -"
        for name in ("preset", "label"):
            if not isinstance(getattr(self, name), str) or len(getattr(self, name)) > 100:
                errors[name] = "must be a text of at most 100 characters"
        if not isinstance(self.question, str) or not isinstance(self.dataset, str) \
                or len(self.question) > 40 or len(self.dataset) > 40:
            errors["question"] = "question and data set are short names"
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            errors["device"] = "must be auto, cpu, cuda or mps"
        if not isinstance(self.init, str) or len(self.init) > 300:
            errors["init"] = "must be a model source such as pretrained:NAME or run:ID"
        hp = None
        if not isinstance(self.hparams, dict):
            errors["hparams"] = "must be a mapping of settings"
        elif not errors.get("question"):
            try:
                hp = validator(self.question, self.dataset, self.hparams)
            except ValueError as e:
                errors.update(getattr(e, "errors", None) or {"hparams": str(e)})
            except (OverflowError, OSError, TypeError, RecursionError) as e:   # any bad value is refused, in words
                errors["hparams"] = f"a setting could not be read ({type(e).__name__})"
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
    """The JSON in `path`, or `default` when it is missing, unreadable, not UTF-8 or not JSON."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return default


def read_status(run_dir: Path) -> dict:
    """A run's status.json, read defensively: a missing file is a run just queued; an unreadable, non-UTF-8,
    non-object or unknown-state file is a failed run (with the reason), never an error for the page reading it."""
    path = Path(run_dir) / "status.json"
    if not path.exists():
        return {"state": "queued"}
    st = read_json(path, None)
    if not isinstance(st, dict) or st.get("state") not in STATES:
        return {"state": "failed", "corrupt": True,
                "reason": "its status.json is corrupt (not a JSON object with a known state); the run cannot go on"}
    return st


def read_spec(run_dir: Path) -> dict:
    spec = read_json(Path(run_dir) / "spec.json", None)
    return spec if isinstance(spec, dict) else {"question": "?", "dataset": "?", "corrupt": True}


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


class QueueFull(InvalidSpec):
    """Refused by the queue's caps (policy.py), not by the hyperparameters."""


LIST_TTL_S = 1.0   # many sessions list the runs each second: one read of the folders serves them all


class RunStore:
    """The run folders under `root` and their queue. `validator` (core.questions.validate) is needed to submit;
    reading, cancelling and pumping need none. `policy` (policy.py) defaults to the environment's settings."""

    def __init__(self, root: Path | str | None = None, max_concurrent: int | None = None,
                 launcher: Launcher | None = None, validator: Validator | None = None, policy: Policy | None = None):
        self.root = Path(root) if root else default_root()   # made when the first run is written, never by a read
        self.launcher = launcher or launcher_from_env()
        self.policy = policy or Policy.from_env(max_concurrent, placed_by_cluster=getattr(self.launcher, "cluster", False))
        self.unavailable = ""   # why the launcher could not start runs at the last pump ("" = it could)
        self.validator = validator
        self._cache: tuple[float, list[dict]] | None = None
        self._cache_lock = threading.Lock()
        self._failed_here: dict[str, dict] = {}   # failures this process could not write (a full disk)

    @property
    def max_concurrent(self) -> int:
        return self.policy.slots

    # -- paths and reads ------------------------------------------------------------------------------------------
    def dir(self, run_id: str) -> Path:
        if not is_run_id(run_id):
            raise KeyError("no such run (a run id reads like 20260101-120000-q1a-0a1b2c)")
        d = self.root / run_id
        if not (d / "spec.json").exists():
            raise KeyError(f"no run {run_id}")
        return d

    def dir_exists(self, run_id: str) -> bool:
        """Is there a run with this id (a well-formed one)?"""
        return is_run_id(run_id) and (self.root / run_id / "spec.json").exists()

    def ids(self) -> list[str]:
        """Run ids, newest first (ids start with a sortable timestamp)."""
        try:
            return sorted((p.name for p in self.root.iterdir() if is_run_id(p.name) and (p / "spec.json").exists()),
                          reverse=True)
        except FileNotFoundError:
            return []

    def spec(self, run_id: str) -> RunSpec:
        d = read_spec(self.dir(run_id))
        if d.get("corrupt"):
            raise KeyError(f"run {run_id!r} has a corrupt spec.json")
        return RunSpec.from_dict(d)

    def status(self, run_id: str) -> dict:
        return self._failed_here.get(run_id) or read_status(self.dir(run_id))

    def events(self, run_id: str, offset: int = 0) -> tuple[list[dict], int]:
        return read_events(self.dir(run_id) / "events.jsonl", offset)

    def entries(self, fresh: bool = False) -> list[dict]:
        """Every run as {"id", "spec", "status", "pinned"}, newest first; re-read at most every LIST_TTL_S."""
        with self._cache_lock:
            if not fresh and self._cache and time.time() - self._cache[0] < LIST_TTL_S:
                return self._cache[1]
            out = [{"id": rid, "spec": read_spec(self.root / rid),
                    "status": self._failed_here.get(rid) or read_status(self.root / rid),
                    "pinned": (self.root / rid / "pinned").exists()} for rid in self.ids()]
            self._cache = (time.time(), out)
            return out

    def _changed(self):
        self._cache = None

    def list(self, question: str | None = None, dataset: str | None = None, owner: str | None = None) -> list[dict]:
        """Runs (newest first), optionally of one question, data set, or owner — then with the runs everyone sees:
        the pinned ones and those of no owner (made on this machine from the command line)."""
        return [e for e in self.entries()
                if not (question and e["spec"].get("question") != question)
                and not (dataset and e["spec"].get("dataset") != dataset)
                and not (owner is not None and owner_of(e) not in (owner, "") and not e["pinned"])]

    def finished(self, questions, dataset: str | None = None, file: str = "model.safetensors",
                 owner: str | None = None) -> list[dict]:
        """Runs of these questions (and data set) that ended done and hold `file`, newest first: the list
        entries plus "dir". owner: only those this owner may see (their own, pinned, of no owner); None = all."""
        questions = (questions,) if isinstance(questions, str) else tuple(questions)
        return [{**r, "dir": self.root / r["id"]} for r in self.list(dataset=dataset, owner=owner)
                if r["spec"].get("question") in questions and r["status"].get("state") == "done"
                and (self.root / r["id"] / file).exists()]

    def handle(self, status: dict) -> dict:
        """The launcher's handle of a run's worker (older status files kept only a pid)."""
        return status.get("handle") or {"pid": status.get("pid")}

    def alive(self, run_id: str) -> bool:
        return self.launcher.alive(self.dir(run_id), self.handle(self.status(run_id)))

    def may_view(self, run_id: str, owner: str, instructor: bool = False, token: str = "") -> bool:
        """May this viewer open the run (its page, events, samples, downloads)? Its owner, an instructor, anyone for
        a pinned run or a run of no owner, and a link carrying the run's share token. False for no such run."""
        try:
            d = self.dir(run_id)
        except KeyError:
            return False
        run_owner = read_spec(d).get("owner", "") or ""
        if instructor or run_owner in ("", owner) or (d / "pinned").exists():
            return True
        made = (d / "share").read_text().strip() if (d / "share").exists() else ""
        return bool(made and token) and hmac.compare_digest(made.encode(), str(token).encode("utf-8", "replace"))

    def share(self, run_id: str) -> str:
        """The run's share token, made once and atomically (concurrent presses all get the one token): a link with
        it opens the run for anyone who has the link, until `unshare`."""
        f = self.dir(run_id) / "share"
        for _ in range(3):
            try:
                made = f.read_text().strip()
            except FileNotFoundError:
                made = ""
            if made:
                return made
            tmp = f.with_name(f".share-{uuid.uuid4().hex}")
            tmp.write_text(secrets.token_urlsafe(16))
            try:
                os.link(tmp, f)          # only the first link wins; a reader never sees a half-written token
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return f.read_text().strip()

    def unshare(self, run_id: str) -> None:
        """Stop sharing: links made with the old token no longer open the run (a new Share makes a new token)."""
        (self.dir(run_id) / "share").unlink(missing_ok=True)
        self._changed()

    def shared(self, run_id: str) -> bool:
        return (self.dir(run_id) / "share").exists()

    def owns(self, run_id: str, owner: str, instructor: bool = False) -> bool:
        """May `owner` cancel or delete this run? Its owner may, an instructor may."""
        return instructor or read_spec(self.dir(run_id)).get("owner", "") == owner

    # -- writes -----------------------------------------------------------------------------------------------------
    def set_status(self, run_id: str, **fields) -> dict:
        d = self.dir(run_id)
        old = read_json(d / "status.json", {})
        st = {**(old if isinstance(old, dict) else {}), **fields, "updated": time.time()}
        st.pop("corrupt", None)
        write_json_atomic(d / "status.json", st)
        self._changed()
        return st

    def _fail(self, run_id: str, reason: str) -> None:
        """Mark a run failed; when the disk refuses even that, this process remembers it (pages still show it)."""
        try:
            self.set_status(run_id, state="failed", reason=reason, ended=time.time())
            self._failed_here.pop(run_id, None)
        except OSError:
            self._failed_here[run_id] = {"state": "failed", "reason": reason, "ended": time.time()}
            self._changed()

    def submit(self, spec: RunSpec, start: bool = True) -> str:
        """Validate, check the queue's caps, write the run folder, queue it and (by default) start workers.
        Nothing is written if it is refused (InvalidSpec for the settings, QueueFull for the caps)."""
        if self.validator is None:
            raise RuntimeError("this RunStore was made without a validator: pass validator=core.questions.validate")
        spec = spec.validated(self.validator)
        with self._lock():
            self._check_caps(spec.owner)
            run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{spec.question.lower()}-{uuid.uuid4().hex[:6]}"
            d = self.root / run_id
            d.mkdir(parents=True)
            try:
                write_json_atomic(d / "spec.json", spec.to_dict())
                write_json_atomic(d / "status.json", {"state": "queued", "created": time.time(), "updated": time.time()})
                (d / "events.jsonl").touch()
            except OSError as e:
                shutil.rmtree(d, ignore_errors=True)
                raise QueueFull({"queue": f"the run could not be written ({_os_reason(e)}); nothing was queued"}) from None
            self._changed()
        if start:
            self.pump()
        return run_id

    def _check_caps(self, owner: str) -> None:
        p, entries = self.policy, self.entries(fresh=True)
        waiting = [e for e in entries if e["status"].get("state") == "queued"]
        mine = [e for e in waiting if owner_of(e) == owner]
        if p.owner_queued and len(mine) >= p.owner_queued:   # owner-less runs (the command line) count as one owner
            raise QueueFull({"queue": f"you already have {len(mine)} runs waiting (at most {p.owner_queued} each): "
                                      "wait for one to start, or cancel one"})
        if p.queue_max and len(waiting) >= p.queue_max:
            raise QueueFull({"queue": f"the queue is full ({len(waiting)} runs waiting, at most {p.queue_max}): "
                                      "try again in a few minutes"})

    def cancel(self, run_id: str, reason: str = "") -> str:
        """Queued runs are cancelled at once; running ones stop at their next check (a minibatch, an evaluation
        batch, a sampling step), keeping what they have; one that has not stopped after the grace period is
        stopped by force (pump)."""
        d = self.dir(run_id)
        with self._lock():
            state = self.status(run_id).get("state")
            if state == "queued":
                self.set_status(run_id, state="cancelled", reason=reason or "cancelled before it started",
                                ended=time.time())
                return "cancelled"
            if state == "running":
                if not (d / "cancel").exists():
                    (d / "cancel").write_text(reason)
                return "cancelling"
        return state

    def dependents(self, run_id: str, entries: list[dict] | None = None) -> list[str]:
        """Other runs that name this one ("run:ID") in their settings or start from it (a tokenizer, a model
        continued): deleting it would break them."""
        ref = f"run:{run_id}"
        return [e["id"] for e in (entries if entries is not None else self.entries(fresh=True)) if e["id"] != run_id
                and (e["spec"].get("init") == ref or ref in (e["spec"].get("hparams") or {}).values())]

    def delete(self, run_id: str) -> None:
        d = self.dir(run_id)
        state = self.status(run_id).get("state")
        if state == "running" and self.alive(run_id):
            raise RuntimeError("this run is still running: cancel it first, then delete it")
        mine = read_spec(d).get("owner", "") or ""
        others = [r for r in self.dependents(run_id) if (read_spec(self.root / r).get("owner", "") or "") != mine]
        if others:
            raise RuntimeError(f"{len(others)} run{'s' if len(others) > 1 else ''} of other learners "
                               f"{'were' if len(others) > 1 else 'was'} trained on this one: it stays while they do")
        shutil.rmtree(d)
        self._changed()

    def pin(self, run_id: str, pinned: bool = True) -> None:
        """Pinned runs are shown to everyone (an instructor's) and never pruned."""
        f = self.dir(run_id) / "pinned"
        f.touch() if pinned else f.unlink(missing_ok=True)
        self._changed()

    # -- the queue ----------------------------------------------------------------------------------------------------
    @contextmanager
    def _lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def recover(self) -> list[str]:
        """Mark failed the runs whose worker is gone (a killed worker, a crash, a machine restart) or whose status
        file is corrupt; stop by force a cancelled run past its grace period, and ask a run past its budget to stop."""
        failed, now = [], time.time()
        for e in self.entries(fresh=True):
            rid, st = e["id"], e["status"]
            if st.get("corrupt") and rid not in self._failed_here:
                self._fail(rid, st["reason"])
                failed.append(rid)
            if st.get("state") != "running":
                continue
            d = self.root / rid
            if not self.launcher.alive(d, self.handle(st)):
                # the worker may have just finished and written its final state: re-read before judging
                st = read_status(d)
                if st.get("state") != "running":
                    continue
                if (d / "cancel").exists():   # asked to stop: never queued or started again, whatever the launcher
                    self.set_status(rid, state="cancelled", ended=now, handle=None,
                                    reason=(d / "cancel").read_text().strip() or "cancelled")
                    continue
                warm = bool(self.handle(st).get("warm"))
                if not st.get("began") and (warm or getattr(self.launcher, "cluster", False)) \
                        and st.get("requeued", 0) < 3:
                    # placed on a cluster, gone before its worker began (e.g. the head restarted), or handed to a warm
                    # worker that died before it began the run: queue it again
                    self.set_status(rid, state="queued", handle=None, requeued=st.get("requeued", 0) + 1,
                                    note="its warm worker ended before it began: queued again" if warm else
                                    "its cluster job vanished before it began: queued again")
                    continue
                why = getattr(self.launcher, "ended_reason", None)
                self._fail(rid, (why(d, self.handle(st)) + "; see worker.log") if why else
                           "the worker process ended without finishing (killed, crashed, or the machine restarted); "
                           "see worker.log")
                failed.append(rid)
                continue
            cancel = d / "cancel"
            if cancel.exists():
                if now - cancel.stat().st_mtime > self.policy.grace_s:
                    self.launcher.stop(d, self.handle(st))
                    try:
                        self.set_status(rid, state="cancelled", ended=now,
                                        reason=f"stopped by force: it did not stop within {self.policy.grace_s:.0f} s "
                                               "of being cancelled; what it recorded is kept")
                    except OSError:
                        pass
            elif self.policy.budget_s and st.get("started") and now - st["started"] > self.policy.budget_s:
                cancel.write_text(f"stopped at this server's wall-clock budget of {self.policy.budget_s / 60:.0f} "
                                  "min per run (ARLAB_RUN_BUDGET_S); what it learned is kept")
        return failed

    def pump(self) -> list[str]:
        """Recover dead runs, then start waiting runs in the fair order up to the slots. Returns the ids started."""
        from ..device import threads_per_run

        started, p = [], self.policy
        with self._lock():
            self.recover()
            entries = self.entries()   # recover's read, unless it changed something (then read again)
            by_id = {e["id"]: e for e in entries}
            running = [e for e in entries if e["status"].get("state") == "running"]
            per_owner: dict[str, int] = {}
            for e in running:
                per_owner[owner_of(e)] = per_owner.get(owner_of(e), 0) + 1
            gpu_load = [sum(1 for e in running if (e["status"].get("handle") or {}).get("gpu") == g)
                        for g in range(p.gpus)]
            for rid in order(entries, time.time()):
                if len(running) + len(started) >= p.slots:
                    break
                o = owner_of(by_id[rid])
                if p.owner_running and per_owner.get(o, 0) >= p.owner_running:
                    continue   # at their cap: the next owner's run goes first
                env = {}
                if p.gpus:
                    g = min(range(p.gpus), key=lambda i: gpu_load[i])
                    gpu_load[g] += 1
                    env["CUDA_VISIBLE_DEVICES"] = str(g)
                    env["ARLAB_GPU_SHARE"] = f"{min(1.0, p.gpus / p.slots):.3f}"   # its share of the card's memory
                try:
                    handle = self.launcher.start(self.root / rid, threads_per_run(p.slots), env=env)
                except LauncherUnavailable as e:
                    self.unavailable = str(e)   # nothing is lost: the runs stay queued until it answers
                    break
                except OSError as e:
                    self._fail(rid, f"its worker could not be started ({_os_reason(e)})")
                    continue
                self.unavailable = ""
                if p.gpus:
                    handle["gpu"] = int(env["CUDA_VISIBLE_DEVICES"])
                self.set_status(rid, state="running", handle=handle, pid=handle.get("pid"), started=time.time())
                per_owner[o] = per_owner.get(o, 0) + 1
                started.append(rid)
            if hasattr(self.launcher, "keep_warm") and (started or running or any(
                    e["status"].get("state") == "queued" for e in entries)):
                try:
                    self.launcher.keep_warm(self.root)   # while a class trains, the next run's worker waits warm
                except OSError:
                    pass
        return started

    def position(self, run_id: str) -> dict | None:
        """Where a waiting run stands: {"position": 1-based, "waiting": all waiting, "estimate_s": rough seconds
        until it starts, or None while no run of its kind has finished here}. None when it is not waiting."""
        entries, now = self.entries(), time.time()
        queue = order(entries, now)
        if run_id not in queue:
            return None
        i = queue.index(run_id)
        spec = next(e["spec"] for e in entries if e["id"] == run_id)
        running_left = []
        for e in entries:
            if e["status"].get("state") == "running":
                typ = self.typical_seconds(e["spec"], entries)
                running_left.append((typ or 0) - (now - (e["status"].get("started") or now)))
        return {"position": i + 1, "waiting": len(queue),
                "estimate_s": estimate_wait(i, self.policy.slots, self.typical_seconds(spec, entries), running_left)}

    def typical_seconds(self, spec: dict, entries: list[dict] | None = None) -> float | None:
        """The median duration of the recent finished runs like this one (same question and preset; else same
        question), or None."""
        entries = entries if entries is not None else self.entries()
        for same in (lambda s: s.get("question") == spec.get("question") and s.get("preset") == spec.get("preset"),
                     lambda s: s.get("question") == spec.get("question")):
            times = sorted(e["status"]["ended"] - e["status"]["started"] for e in entries
                           if e["status"].get("state") == "done" and same(e["spec"])
                           and e["status"].get("started") and e["status"].get("ended"))[-20:]
            if times:
                return times[len(times) // 2]
        return None

    def queue_summary(self, owner: str | None = None) -> dict:
        """Runs per state (of one owner, when given)."""
        counts = {s: 0 for s in STATES}
        for e in self.entries():
            if owner is None or owner_of(e) == owner:
                counts[e["status"].get("state", "queued")] += 1
        return counts

    def prune(self, now: float | None = None) -> list[str]:
        """Delete finished runs older than the policy's age; then, while all runs take more than its size, the
        oldest finished run of the learner whose runs take the most (so one learner's disk never costs another
        their runs while theirs are the larger share). Never a waiting, running or pinned run, nor one that a
        kept run was trained on (a tokenizer, a model continued)."""
        now, p, gone = now or time.time(), self.policy, []
        entries = self.entries(fresh=True)
        needed = {r for e in entries for r in [e["spec"].get("init") or "", *(e["spec"].get("hparams") or {}).values()]
                  if isinstance(r, str) and r.startswith("run:")}
        ended = sorted((e for e in entries   # oldest first (ids order runs only to the second)
                        if e["status"].get("state") in ("done", "cancelled", "failed") and not e["pinned"]
                        and f"run:{e['id']}" not in needed), key=lambda e: (e["status"].get("created") or 0, e["id"]))

        def drop(e):
            shutil.rmtree(self.root / e["id"], ignore_errors=True)
            gone.append(e["id"])

        for e in ended:
            t = e["status"].get("ended") or e["status"].get("updated") or now
            if p.keep_days and now - t > p.keep_days * 86400:
                drop(e)
        if p.keep_gb:
            sizes = {e["id"]: _du(self.root / e["id"]) for e in entries if e["id"] not in gone}
            use: dict[str, int] = {}
            for e in entries:
                use[owner_of(e)] = use.get(owner_of(e), 0) + sizes.get(e["id"], 0)
            left = [e for e in ended if e["id"] not in gone]
            while sum(use.values()) > p.keep_gb * 2**30 and left:
                heaviest = max({owner_of(e) for e in left}, key=lambda o: use[o])
                e = next(e for e in left if owner_of(e) == heaviest)   # their oldest
                left.remove(e)
                use[heaviest] -= sizes.get(e["id"], 0)
                drop(e)
        if gone:
            self._changed()
        return gone

    def disk_use(self) -> dict[str, int]:
        """{owner: bytes their runs take} ("" = runs of no owner)."""
        out: dict[str, int] = {}
        for e in self.entries():
            out[owner_of(e)] = out.get(owner_of(e), 0) + _du(self.root / e["id"])
        return out


def _du(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    return e.strerror or type(e).__name__
