"""The run-context interface: how training and a question talk to whatever runs them.

This class is also the null implementation, used when training in-process (the notebook functions, scripts,
tests): every call is accepted and nothing is recorded. The run engine's worker subclasses it to write a run
folder (core.engine.worker.RunContext). So code never asks `hasattr(ctx, ...)`: every context has every method.
"""
from __future__ import annotations

import re
from pathlib import Path

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
