"""One run, in its own process:  python -m core.engine.worker RUN_DIR
(or started ahead, warm:  python -m core.engine.worker --warm POOL TOKEN, waiting for the one run it is handed)

Reads spec.json, runs the question it names (`core.questions.get(key).run(spec, ctx)`: the one place the engine
meets the questions), appends events, and ends the run in exactly one of done / cancelled / failed (with the
reason). Then it asks the queue to start the next run. `RunContext` is the engine's implementation of the
run-context interface every question talks to (core.questions.base.RunContext).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .. import ROOT
from ..context import HIGH_RATE, Thinner
from ..context import RunContext as RunContextBase
from ..train import NonFiniteLoss, RunCancelled
from .runs import RunSpec, RunStore, read_json, write_json_atomic


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


class RunContext(RunContextBase):
    """A run folder as a question sees it: events, cancel, artifacts, the device, where other runs live."""
    keeps = True

    def __init__(self, run_dir: Path, device: str = "cpu"):
        self.run_dir = Path(run_dir)
        self.runs_root = self.run_dir.parent
        self.device = device
        self._events = open(self.run_dir / "events.jsonl", "a")
        self._cancel = self.run_dir / "cancel"
        self._thin = Thinner()   # per-minibatch events averaged: the file stays bounded whatever the run's length

    def emit(self, type: str, **fields) -> None:
        fields = {"t": time.time(), **fields}
        if type in HIGH_RATE:
            out = self._thin.add(type, fields)
        else:
            out = self._thin.flush() + [(type, fields)]
            if type == "start" and fields.get("steps_per_epoch") and fields.get("epochs"):
                self._thin.start(fields["steps_per_epoch"], fields["epochs"])
        if out:
            self._events.write("".join(json.dumps({"type": t, **f}, default=_jsonable) + "\n" for t, f in out))
            self._events.flush()

    def cancelled(self) -> bool:
        return self._cancel.exists()

    def progress(self, frac: float, msg: str = "") -> None:
        self.emit("progress", frac=float(frac), msg=msg)

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def save_images(self, name: str, images, ncols: int = 10, levels: int | None = None, **meta) -> str:
        """Save integer images as `name.npy` and a grid `name.png`, and announce them as an artifact event."""
        from ..viz import image_grid, save_png

        images = np.asarray(images)
        np.save(self.run_dir / f"{name}.npy", images)
        save_png(image_grid(images, ncols=ncols, levels=levels), self.run_dir / f"{name}.png")
        self.emit("artifact", kind="images", name=name, png=f"{name}.png", npy=f"{name}.npy", **meta)
        return name

    def save_json(self, name: str, obj, **meta) -> str:
        write_json_atomic(self.run_dir / f"{name}.json", json.loads(json.dumps(obj, default=_jsonable)))
        self.emit("artifact", kind="json", name=name, file=f"{name}.json", **meta)
        return name

    def save_checkpoint(self, model, config: dict, name: str = "model", **meta) -> str:
        from ..checkpoints import save_checkpoint

        save_checkpoint(self.run_dir / f"{name}.safetensors", model, config, meta)
        self.emit("artifact", kind="checkpoint", name=name, file=f"{name}.safetensors")
        return name

    def close(self):
        rest = self._thin.flush()
        if rest:
            self._events.write("".join(json.dumps({"type": t, **f}, default=_jsonable) + "\n" for t, f in rest))
        self._events.close()


def limit_memory() -> int | None:
    """Cap this worker's memory (CPU runs: the address space, RLIMIT_AS) at what one run may use here
    (core.memory.worker_limit_bytes), so a run that outgrows it fails with "out of memory" instead of taking the
    machine down. Returns the limit in bytes (None when none could be set)."""
    try:
        import resource

        from ..memory import worker_limit_bytes

        limit = int(worker_limit_bytes()) + VIRTUAL_OVERHEAD
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        return limit
    except Exception:  # no limit is better than no run
        return None


# torch, its libraries and its thread pools reserve address space they never touch (measured: ~0.8 GB of VmSize
# for an idle worker with torch and the questions imported, more with thread arenas); the cap leaves room for that on top of what the run may use
VIRTUAL_OVERHEAD = 3 * 2**30


def failure_reason(e: BaseException) -> str:
    """What a learner reads when a run fails: plain words for the faults a class hits, the type and text otherwise
    (no tracebacks or paths: those go to worker.log)."""
    import errno

    from ..reasons import pathless

    if isinstance(e, NonFiniteLoss):
        return str(e)
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return "the disk is full (no space left on device): the run stopped and its temporary files were removed"
    text = str(e)
    if isinstance(e, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text.lower() \
            or type(e).__name__ == "OutOfMemoryError":
        return ("out of memory: this run needed more memory than one run may use on this server; lower the batch "
                "size or the model's size")
    return f"{type(e).__name__}: {pathless(e) if isinstance(e, OSError) else pathless(text.replace(str(ROOT), '.'))}"


def initial_weights(spec: RunSpec, ctx) -> dict:
    """The weights of the model `spec.init` names (same question and data set), for a continued run."""
    from .. import sources
    from ..checkpoints import read_checkpoint

    found = sources.resolve(spec.init, spec.question, spec.dataset, ctx.runs_root)
    state, _, _ = read_checkpoint(found.path, found.sha256)   # the weights alone: no model to build
    ctx.emit("log", msg=f"continuing from {found.label}")
    return state


def _remove_temp_files(run_dir: Path) -> None:
    for f in run_dir.glob(".*.tmp"):
        f.unlink(missing_ok=True)


def main(run_dir: str, own_process: bool = False, niced: bool = False) -> int:
    """Run the run in `run_dir`. own_process: this is the worker's own process (python -m core.engine.worker), so it
    may cap its memory; a caller running a run in-process (tests, scripts) keeps its own limits."""
    run_dir = Path(run_dir).resolve()
    store = RunStore(run_dir.parent)
    run_id = run_dir.name
    ctx = None
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("ARLAB_THREADS", "0")) or torch.get_num_threads())
        from .. import questions
        from ..device import pick_device

        spec = RunSpec.from_dict(read_json(run_dir / "spec.json")).validated(questions.validate)
        device = pick_device(spec.device)
        if device == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 matmuls: same results to ~1e-3, much faster
            share = float(os.environ.get("ARLAB_GPU_SHARE", "0") or 0)
            if share:
                torch.cuda.set_per_process_memory_fraction(share)
        elif own_process:
            limit_memory()
        if own_process and not niced:
            # below the server in the CPU's queue: pages answer at once, and training still gets every idle cycle
            os.nice(int(os.environ.get("ARLAB_WORKER_NICE", "10") or 0))
        store.set_status(run_id, state="running", pid=os.getpid(), device=device, began=time.time(),
                         host=socket.gethostname())
        ctx = RunContext(run_dir, device)
        ctx.emit("log", msg=f"worker {os.getpid()} on {device} with {torch.get_num_threads()} threads")
        if spec.init:
            ctx.init_state = initial_weights(spec, ctx)
        result = questions.get(spec.question).run(spec, ctx) or {}
        ctx.emit("result", **result)
        store.set_status(run_id, state="done", ended=time.time(), result=json.loads(json.dumps(result, default=_jsonable)))
        return 0
    except RunCancelled as e:
        why = ""
        try:
            why = (run_dir / "cancel").read_text().strip()
        except OSError:
            pass
        reason = f"{why} ({e})" if why else str(e)
        try:
            if ctx:
                ctx.emit("log", msg=reason)
            store.set_status(run_id, state="cancelled", reason=reason, ended=time.time())
        except OSError as e2:
            _remove_temp_files(run_dir)
            store._fail(run_id, failure_reason(e2))
        return 0
    except BaseException as e:  # noqa: BLE001 - every failure must end the run with its reason
        traceback.print_exc()
        _remove_temp_files(run_dir)
        try:
            store._fail(run_id, failure_reason(e))
        except Exception:
            traceback.print_exc()
        return 1
    finally:
        if ctx:
            try:
                ctx.close()
            except OSError:
                pass
        try:
            if os.environ.get("ARLAB_LAUNCHER", "local") in ("", "local"):
                store.pump()  # start the next queued run, even when no page is open (on a cluster: the server does)
        except Exception:
            traceback.print_exc()


def warm_up() -> None:
    """What every run's first seconds went to, done ahead: torch and the questions imported (~0.9 s here), and the
    optimisers' first step (~1 s: torch compiles their kernels' helpers on first use)."""
    import torch

    from .. import questions  # noqa: F401
    from .. import checkpoints, data, train  # noqa: F401

    p = torch.zeros(2, requires_grad=True)
    for opt in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
        o = opt([p], lr=0.1)
        (p * p).sum().backward()
        o.step()


WARM_POLL_S = 0.02
WARM_IDLE_S = 120.0   # a warm worker nobody took in this long leaves (a quiet server, or one that stopped, keeps none)


def warm_main(pool: str, token: str) -> int:
    """A warm worker: python -m core.engine.worker --warm POOL TOKEN. Warms up, says so (<token>.ready), waits for
    the one run a launcher hands it (<token>.run, written after it claimed <token>.wait), runs it as a cold worker
    would (its own log, threads and settings) and exits. Leaves when its pool is gone or nobody took it in time."""
    pool_dir = Path(pool)
    me = {s: pool_dir / f"{token}.{s}" for s in ("wait", "claimed", "run", "ready", "log")}
    try:
        os.nice(int(os.environ.get("ARLAB_WORKER_NICE", "10") or 0))
        warm_up()
        me["ready"].touch()
    except Exception:  # noqa: BLE001 - a worker that cannot warm up leaves; the pool starts another or runs go cold
        traceback.print_exc()
        _leave(me)
        return 1
    t0 = time.time()
    while not me["run"].exists():
        if not pool_dir.is_dir() or time.time() - t0 > WARM_IDLE_S:
            if _leave(me):
                return 0
        time.sleep(WARM_POLL_S)
    order = json.loads(me["run"].read_text())
    for f in me.values():
        f.unlink(missing_ok=True)
    run_dir = Path(order["run_dir"])
    os.environ.update({**order.get("env", {}), "ARLAB_THREADS": str(order.get("threads", 1))})
    with open(run_dir / "worker.log", "ab") as log:   # the run's log, as a cold worker's
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    with RunStore(run_dir.parent)._lock():
        pass   # the launcher that handed the run holds the queue's lock until it has noted the handle: wait for that
    return main(str(run_dir), own_process=True, niced=True)


def _leave(me: dict) -> bool:
    """Leave the pool unless a launcher claimed this worker meanwhile (then it must wait for its run)."""
    try:
        os.rename(me["wait"], me["log"].with_suffix(".gone"))
    except FileNotFoundError:
        if me["claimed"].exists() or me["run"].exists():
            return False
    for f in (me["ready"], me["log"].with_suffix(".gone"), me["log"]):
        f.unlink(missing_ok=True)
    return True


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--warm":
        sys.exit(warm_main(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        sys.exit("usage: python -m core.engine.worker RUN_DIR  |  --warm POOL TOKEN")
    sys.exit(main(sys.argv[1], own_process=True))
