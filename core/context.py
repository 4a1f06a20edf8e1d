"""The run-context interface: how training and a question talk to whatever runs them.

This class is also the null implementation, used when training in-process (the notebook functions, scripts,
tests): every call is accepted and nothing is recorded. The run engine's worker subclasses it to write a run
folder (core.engine.worker.RunContext). So code never asks `hasattr(ctx, ...)`: every context has every method.
"""
from __future__ import annotations

from pathlib import Path


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
