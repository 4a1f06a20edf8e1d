"""The write-up's figures: generic matplotlib drawings (the course's own figures are matplotlib's, on the Agg
backend), and what a question draws its figures from.

    train_plot, learned_dist, samples_figure, pairs_figure, timing_plot, text_figure   one figure each -> its path
    Figure(draw, why)     a figure a question can make: draw(path) -> path; `why` says what a failure means
    RunRecord             what a finished run left for the write-up (losses, result, saved arrays, artifacts)

Each question (core.questions) says which figures it has and how to draw them from a run or a shipped checkpoint;
core.report lays them out. This module knows no question.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import data, viz


@dataclass
class Figure:
    """One figure a question can make: draw(path) writes it and returns the path; a FileNotFoundError, KeyError or
    ValueError from it lists the figure as missing, saying `why` (e.g. "no samples saved")."""
    draw: Callable[[Path], Path]
    why: str = ""


@dataclass
class RunRecord:
    """What a finished run left for the write-up."""
    dataset: str
    dir: Path                       # the run folder (saved arrays: samples.npy, timings.json, ...)
    result: dict                    # the run's result (status.json)
    train: list                     # train loss of every minibatch
    test: list                      # test loss per epoch (0 = before training)
    unit: str
    store: Any = None               # the run store and the run's id, for its events
    run_id: str = ""
    extra: dict = field(default_factory=dict)   # what the write-up reports beside the figures (timings, texts)

    def artifacts(self) -> dict:
        """The run's artifact events by name (the last of each name)."""
        events, _ = self.store.events(self.run_id, 0)
        return {e["name"]: e for e in events if e.get("type") == "artifact"}


def levels(dataset: str) -> int:
    """Values per channel of a data set's images: 2 (binary) or 4 (colour)."""
    return 2 if data.image_shape(dataset)[2] == 1 else 4


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def train_plot(path, train_losses, test_losses, title: str, unit: str) -> Path:
    """Train loss of every minibatch and test loss per epoch, on an epoch axis (as the course draws them)."""
    plt = _plt()
    train_losses, test_losses = np.asarray(train_losses, float), np.asarray(test_losses, float)
    epochs = max(len(test_losses) - 1, 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(np.arange(1, len(train_losses) + 1) * epochs / max(len(train_losses), 1), train_losses,
            label="train loss")
    ax.plot(np.arange(len(test_losses)), test_losses, label="test loss")
    ax.set(title=title, xlabel="Epoch", ylabel=f"NLL ({unit})")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def learned_dist(path, train_data, probs, title: str) -> Path:
    plt = _plt()
    d = len(probs)
    counts = np.bincount(np.asarray(train_data, int), minlength=d)[:d]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.bar(np.arange(d), counts / max(counts.sum(), 1), width=1.0, label="train data")
    ax.step(np.arange(d + 1) - 0.5, np.append(probs, probs[-1]), where="post", color="C1", label="learned distribution")
    ax.set(title=title, xlabel="x", ylabel="Probability")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def samples_figure(path, images, title: str, ncols: int = 10, levels: int | None = None) -> Path:
    plt = _plt()
    grid = viz.image_grid(images, ncols=ncols, levels=levels)
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * grid.shape[0] / grid.shape[1] + 0.4))
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def pairs_figure(path, images, captions, title: str) -> Path:
    """Q6's 3x3 panel: each image with its caption under it."""
    plt = _plt()
    rgb = viz.to_rgb(images, 4)
    fig, axes = plt.subplots(3, 3, figsize=(7.2, 8.0))
    for ax, img, cap in zip(axes.ravel(), list(rgb) + [None] * 9, list(captions) + [""] * 9):
        ax.axis("off")
        if img is not None:
            ax.imshow(img, interpolation="nearest")
            ax.set_title(cap, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def timing_plot(path, times_uncached, times_cached, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(np.arange(len(times_uncached)), times_uncached, label="without cache")
    ax.plot(np.arange(len(times_cached)), times_cached, label="with cache")
    ax.set(title=title, xlabel="Sampling step (token)", ylabel="Seconds per step", yscale="log")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def text_figure(path, texts, title: str) -> Path:
    import textwrap

    plt = _plt()
    body = "\n\n".join(f"{i + 1}. " + "\n    ".join(textwrap.wrap(t.replace("\n", " / "), 70) or [""])
                       for i, t in enumerate(texts))
    fig = plt.figure(figsize=(7.5, 1.2 + 0.22 * body.count("\n")))
    fig.text(0.02, 0.98, title, va="top", fontsize=12, weight="bold")
    fig.text(0.02, 0.9, body, va="top", family="monospace", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
