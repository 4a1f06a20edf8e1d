"""The lab wired together: the run engine with the question registry as its validator.

    from core.lab import store
    run_id = store().submit(RunSpec("q1a", "1d-1", {"epochs": 3}))

The engine knows no question (core/engine); the questions know no engine (core/questions); this is where the two
meet, for the ui package, the command-line tools, benchmarks and tests. Also here, for the command line (python -m
core) and benchmarks: spec_for (a RunSpec from a preset), run_many (run specs, K at a time, with progress bars)
and Follow (one run's progress bar).
"""
from __future__ import annotations

import time

from . import questions
from .engine import InvalidSpec, RunSpec, RunStore  # noqa: F401 (re-exported for callers of store())


def store(root=None, max_concurrent: int | None = None, launcher=None, policy=None) -> RunStore:
    """A RunStore over `root` (default: $ARLAB_RUNS_DIR or runs/) that validates with the question registry."""
    return RunStore(root, max_concurrent=max_concurrent, launcher=launcher, validator=questions.validate, policy=policy)


class SpecError(ValueError):
    """A preset or setting the command line cannot use; the message says what is allowed."""


def _bar(total, desc, position=0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, position=position, leave=True, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}] {postfix}")


class Follow:
    """A progress bar fed by a run's events: minibatches while training, then the run's own progress messages."""

    def __init__(self, store, run_id: str, desc: str, position: int = 0):
        self.store, self.run_id, self.offset = store, run_id, 0
        self.bar = _bar(1, desc, position)
        self.total = None

    def update(self) -> str:
        events, self.offset = self.store.events(self.run_id, self.offset)
        for e in events:
            if e["type"] == "start":
                self.total = e["steps_per_epoch"] * e["epochs"]
                self.bar.reset(total=self.total)
            elif e["type"] == "train" and self.total:
                self.bar.n = e["step"]
            elif e["type"] == "test":
                self.bar.set_postfix_str(f"test {e['loss']:.4f}")
            elif e["type"] == "progress":
                if not self.total:
                    self.bar.reset(total=1.0)
                    self.bar.n = float(e["frac"])
                self.bar.set_postfix_str(e.get("msg", "")[:40])
        self.bar.refresh()
        return self.store.status(self.run_id).get("state", "queued")

    def close(self, state: str):
        if state == "done" and self.total:
            self.bar.n = self.total
        self.bar.set_postfix_str(state)
        self.bar.close()


def run_many(specs, jobs: int = 1, log=print) -> list[tuple[str, dict]]:
    """Submit the RunSpecs and run them, `jobs` at a time, each in its own worker process; progress bars.
    -> [(run id, final status)]. Ctrl-C cancels them (each stops at its next minibatch, keeping what it has)."""
    from dataclasses import replace

    from .engine.policy import Policy

    # the machine's operator: no per-learner caps on their own list (a class server still counts these runs, all
    # owner-less, as one owner in its queue)
    runs = store(policy=replace(Policy.from_env(max(1, jobs)), owner_queued=None, owner_running=None))
    ids = [runs.submit(s, start=False) for s in specs]
    bars = {}
    import signal

    def stop(signum, frame):   # a SIGTERM (a closed terminal, a job scheduler) stops the runs as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            runs.pump()
            for rid in ids:
                if rid not in bars and runs.status(rid).get("state") != "queued":
                    spec = runs.spec(rid)
                    bars[rid] = Follow(runs, rid, f"{spec.question} {spec.dataset}", len(bars))
            states = {rid: (bars[rid].update() if rid in bars else "queued") for rid in ids}
            if all(s in ("done", "failed", "cancelled") for s in states.values()):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        for rid in ids:
            runs.cancel(rid)
        log("cancelling: every run stops at its next minibatch")
        raise
    out = []
    for rid in ids:
        st = runs.status(rid)
        if rid in bars:
            bars[rid].close(st.get("state"))
        out.append((rid, st))
    return out


def spec_for(question: str, dataset: str, preset: str, epochs: int | None, device: str, seed: int,
             data_fraction: float | None = None):
    q = questions.get(question)
    if preset not in q.presets:
        raise SpecError(f"{question} has no preset {preset!r} (use {', '.join(q.presets)})")
    if data_fraction is not None and not 0 < data_fraction <= 1:
        raise SpecError(f"--data-fraction must be above 0 and at most 1 (got {data_fraction:g})")
    hp = q.hparams(None, preset)
    label = preset
    if epochs is not None and "epochs" in hp:
        hp["epochs"] = epochs
        label += f", {epochs} epochs"
    key = next((k for k in ("data_fraction", "subset") if k in hp), None)
    if data_fraction is not None and key:
        hp[key] = data_fraction
        label += f", {data_fraction:.0%} of the training data"
    return RunSpec(question, dataset, hp, seed=seed, device=device, preset=label)
