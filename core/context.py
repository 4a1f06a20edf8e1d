"""The run-context interface: how training and a question talk to whatever runs them.

This class is also the null implementation, used when training in-process (the notebook functions, scripts,
tests): every call is accepted and nothing is recorded. The run engine's worker subclasses it to write a run
folder (core.engine.worker.RunContext). So code never asks `hasattr(ctx, ...)`: every context has every method.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

# A run of any length writes a bounded events file: per-minibatch events are averaged into at most this many
# points per epoch and this many in all (ARLAB_MAX_TRAIN_POINTS); everything else is written as it comes.
POINTS_PER_EPOCH = 1000
HIGH_RATE = ("train", "vq")     # the event types emitted once per minibatch
LAST_VALUE = ("step", "epoch", "lr", "t")   # fields a thinned point takes from its last minibatch (others: the mean)


def max_train_points() -> int:
    return max(100, int(os.environ.get("ARLAB_MAX_TRAIN_POINTS", "20000") or 20000))


class Thinner:
    """Averages per-minibatch events into points: `add` returns the points due to be written (0 or 1), `flush`
    what is pending (called before any other event, so a file keeps its order). It learns the run's size from the
    "start" event (steps_per_epoch, epochs): every point then averages
    max(ceil(steps_per_epoch / POINTS_PER_EPOCH), ceil(all steps / max_train_points())) minibatches; each point
    says how many in "n"."""

    def __init__(self):
        self.every, self.pending = 1, {}

    def start(self, steps_per_epoch: int, epochs: int) -> None:
        total = max(1, int(steps_per_epoch) * int(epochs))
        self.every = max(1, math.ceil(int(steps_per_epoch) / POINTS_PER_EPOCH), math.ceil(total / max_train_points()))

    def add(self, type: str, fields: dict) -> list[tuple[str, dict]]:
        acc = self.pending.setdefault(type, {"n": 0, "sums": {}, "last": {}})
        acc["n"] += 1
        for k, v in fields.items():
            if k in LAST_VALUE or not isinstance(v, (int, float)) or isinstance(v, bool):
                acc["last"][k] = v
            else:
                acc["sums"][k] = acc["sums"].get(k, 0.0) + float(v)
        return self._take(type) if acc["n"] >= self.every else []

    def _take(self, type: str) -> list[tuple[str, dict]]:
        acc = self.pending.pop(type, None)
        if not acc or not acc["n"]:
            return []
        point = {k: v / acc["n"] for k, v in acc["sums"].items()}
        point.update(acc["last"])
        if self.every > 1:
            point["n"] = acc["n"]
        return [(type, point)]

    def flush(self) -> list[tuple[str, dict]]:
        return [p for t in list(self.pending) for p in self._take(t)]


# Per-epoch artifacts are named "<series>_epoch<N>" (samples_epoch3, recon_epoch3, ...): the scrubber finds them by
# this rule. Runs saved before it kept Q2's previews as "preview_eNNN"; those are still read (series "preview").
_EPOCH_NAME = re.compile(r"(?:(.+)_epoch|(preview)_e)(\d+)$")


def epoch_name(series: str, epoch: int) -> str:
    """The artifact name of `series` after `epoch` ("samples", 3 -> "samples_epoch3")."""
    return f"{series}_epoch{int(epoch)}"


def parse_epoch_name(name: str) -> tuple[str, int] | None:
    """(series, epoch) of a per-epoch artifact name (new or old style), None for any other name."""
    m = _EPOCH_NAME.match(name or "")
    return (m.group(1) or m.group(2), int(m.group(3))) if m else None


class RunContext:
    device: str = "cpu"
    run_dir: Path | None = None       # the run's folder (None in-process: nothing is kept)
    runs_root: Path | None = None     # where finished runs live, for "run:ID" model sources (None = the default)
    keeps: bool = False               # does it keep artifacts? Per-epoch previews are drawn only when it does
    init_state: dict | None = None    # weights the next model `fit` trains starts from (continued training)

    def emit(self, type: str, **fields) -> None:
        """An event: train/test losses, progress, artifacts, logs."""

    def cancelled(self) -> bool:
        """Has a stop been asked for? Checked between minibatches and sampling steps."""
        return False

    def progress(self, frac: float, msg: str = "") -> None:
        """Progress of work that is not minibatches (tokenizing, final sampling), 0..1."""

    def save_images(self, name: str, images, ncols: int = 10, levels: int | None = None, **meta) -> str:
        """Keep integer images (N,H,W,C) as an artifact called `name`."""
        return name

    def save_json(self, name: str, obj, **meta) -> str:
        return name

    def save_checkpoint(self, model, config: dict, name: str = "model", **meta) -> str:
        """Keep the model's weights with the config that rebuilds it (core.sources.build)."""
        return name

    def path(self, name: str) -> Path | None:
        """Where a file of this run goes (None in-process)."""
        return None if self.run_dir is None else Path(self.run_dir) / name
