"""Figures shared by the pages and the report: loss curves, image grids, 1-D distributions.

Everything returns plain objects (plotly figures, numpy RGB arrays) so pages and the report can use them
and tests can inspect them without a browser.
"""
from __future__ import annotations

import math

import numpy as np


def _go():
    """plotly, imported on first use, so training-only machines need not have it."""
    import plotly.graph_objects as go

    return go

TRAIN_COLOR = "#1f77b4"
TEST_COLOR = "#ff7f0e"
# a few distinct colours for overlaying several models or runs
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


# ----------------------------------------------------------------------------- loss curves
def downsample(xs, ys, max_points: int = 2000):
    """Keep long curves light: average consecutive points into at most `max_points` buckets."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    n = len(xs)
    if n <= max_points:
        return xs, ys
    k = math.ceil(n / max_points)
    m = (n // k) * k
    xd = xs[:m].reshape(-1, k).mean(1)
    yd = ys[:m].reshape(-1, k).mean(1)
    if m < n:  # keep the tail so the curve reaches the last step
        xd = np.append(xd, xs[m:].mean())
        yd = np.append(yd, ys[m:].mean())
    return xd, yd


def loss_curve(train_losses, test_losses, steps_per_epoch: float | None = None, title: str = "",
               unit: str = "nats/dim", max_points: int = 2000, name_prefix: str = "",
               colors=(TRAIN_COLOR, TEST_COLOR), fig=None, train_x=None, reference: float | None = None,
               shipped=None, shipped_name: str = "shipped model", restarts=(), test_sample: int | None = None):
    """Train loss of every minibatch and test loss per epoch, both on an epoch axis.

    train_losses: per-minibatch losses; test_losses: epochs+1 values (before training, after each epoch).
    steps_per_epoch: minibatches per epoch; inferred from the two lengths when not given.
    train_x: each train loss's epoch (fractional), where the points are not one per minibatch (thinned events).
    reference: the course's number, drawn as a dashed line labelled with it and the unit.
    shipped: [[epoch, test loss], ...] of the shipped model's own training, drawn as a faint dotted trace.
    restarts: epochs where a run continued from the one before (core.compare.join), each a dotted vertical line.
    test_sample: the test examples each point but the last scored, when a sample (the legend says so).
    """
    go = _go()
    train_losses = np.asarray(train_losses, dtype=float)
    test_losses = np.asarray(test_losses, dtype=float)
    epochs_done = max(len(test_losses) - 1, 0)
    if steps_per_epoch is None:
        steps_per_epoch = len(train_losses) / epochs_done if epochs_done else max(len(train_losses), 1)
    fig = fig or go.Figure()
    if len(train_losses):
        x = np.asarray(train_x, float)[:len(train_losses)] if train_x is not None and len(train_x) >= len(train_losses) \
            else (np.arange(len(train_losses)) + 1) / steps_per_epoch
        x, y = downsample(x, train_losses, max_points)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{name_prefix}train", line=dict(color=colors[0], width=1.5)))
    if len(test_losses):
        fig.add_trace(go.Scatter(x=np.arange(len(test_losses)), y=test_losses, mode="lines+markers",
                                 name=f"{name_prefix}test" + (f" (a {test_sample:,}-example sample; the last: all)"
                                                              if test_sample else ""),
                                 line=dict(color=colors[1], width=2.5)))
    if shipped:
        fig.add_trace(go.Scatter(x=[p[0] for p in shipped], y=[p[1] for p in shipped], mode="lines+markers",
                                 name=f"{shipped_name} (test, as it trained)", opacity=0.45,
                                 line=dict(color="#868e96", width=1.5, dash="dot"), marker=dict(size=4)))
    for i, e in enumerate(restarts or ()):
        fig.add_vline(x=e, line_dash="dot", line_color="#868e96", line_width=1.2,
                      annotation_text="continued" if i == 0 else "", annotation_position="top right")
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="#495057", line_width=1.2,
                      annotation_text=f"course: {reference:.4g} {unit}", annotation_position="top left")
    fig.update_layout(title=title or None, xaxis_title="epoch", yaxis_title=f"loss ({unit})",
                      height=360, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def smooth(values, weight: float) -> np.ndarray:
    """Exponential moving average with debiasing (as TensorBoard's slider): weight 0 = raw, 0.99 = very smooth."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must lie in [0, 1); got {weight}")
    v = np.asarray(values, float)
    out, avg = np.empty_like(v), 0.0
    for i, x in enumerate(v):
        avg = weight * avg + (1 - weight) * x
        out[i] = avg / (1 - weight ** (i + 1))
    return out


def compare_curves(runs: list, smoothing: float = 0.0, x: str = "epoch", unit: str = "nats/dim",
                   max_points: int = 1000, log_y: bool = False):
    """Several runs on one chart: runs = [(label, core.compare.Series)], each in its own colour, its train loss
    (per minibatch, smoothed) as a thin line and its test loss per epoch as a thick line with markers.
    x: "epoch" or "seconds" (wall-clock time since the run started)."""
    if x not in ("epoch", "seconds"):
        raise ValueError(f"x must be epoch or seconds; got {x!r}")
    go = _go()
    fig = go.Figure()
    for i, (label, s) in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        if s.train:
            xs = s.train_epoch if x == "epoch" else s.train_t
            xd, yd = downsample(xs, smooth(s.train, smoothing), max_points)
            fig.add_trace(go.Scatter(x=xd, y=yd, mode="lines", name=f"{label} · train", legendgroup=label,
                                     line=dict(color=color, width=1.2), opacity=0.75))
        if s.test:
            xs = list(range(len(s.test))) if x == "epoch" else s.test_t
            fig.add_trace(go.Scatter(x=xs, y=s.test, mode="lines+markers", name=f"{label} · test",
                                     legendgroup=label, line=dict(color=color, width=3)))
    fig.update_layout(xaxis_title="epoch" if x == "epoch" else "seconds since the run started",
                      yaxis_title=f"loss ({unit})", height=440, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def next_token_bars(probs, labels, chosen: int | None = None, colors=None, top: int = 20, title: str = ""):
    """The next-token distribution as bars: the `top` most likely tokens (those with probability > 0), most likely
    first, the one a draw picks outlined; colors: an optional CSS colour per token (e.g. the pixel's colour)."""
    go = _go()
    p = np.asarray(probs, float)
    order = [int(i) for i in np.argsort(-p, kind="stable")[:top] if p[i] > 0]
    if chosen is not None and chosen not in order and p[chosen] > 0:
        order = order[:-1] + [chosen]
    fill = [colors[i] if colors is not None else ("#ff7f0e" if i == chosen else "#9fb3c8") for i in order]
    line = [3 if i == chosen else 0 for i in order]
    fig = go.Figure(go.Bar(x=[labels[i] for i in order], y=p[order], marker=dict(color=fill, line=dict(
        width=line, color="#d62728")), text=[f"{v:.2f}" for v in p[order]], textposition="outside",
        hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    fig.update_layout(title=title or None, yaxis_title="probability", yaxis_range=[0, min(1.0, p.max() * 1.25 + 0.02)],
                      height=320, margin=dict(l=10, r=10, t=40 if title else 10, b=10), xaxis_type="category")
    return fig


# ----------------------------------------------------------------------------- 1-D distributions
def distribution_plot(data, d: int, models: dict[str, np.ndarray] | None = None, title: str = ""):
    """Histogram of the data (as probabilities over d bins) with each model's distribution drawn over it."""
    go = _go()
    counts = np.bincount(np.asarray(data, dtype=int), minlength=d)[:d]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=np.arange(d), y=counts / max(counts.sum(), 1), name="data (train)",
                         marker_color="rgba(31,119,180,0.45)"))
    for i, (name, probs) in enumerate((models or {}).items()):
        fig.add_trace(go.Scatter(x=np.arange(d), y=np.asarray(probs), mode="lines+markers" if d <= 30 else "lines",
                                 name=name, line=dict(color=PALETTE[(i + 1) % len(PALETTE)], width=2.5)))
    fig.update_layout(title=title or None, xaxis_title="x", yaxis_title="probability", bargap=0.05,
                      height=360, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


# ----------------------------------------------------------------------------- image grids
def to_rgb(images, levels: int | None = None) -> np.ndarray:
    """Integer images (N,H,W,C) with C in {1,3} -> uint8 RGB (N,H,W,3) in 0..255.

    levels: number of values per channel (2 for binary, 4 for 2-bit colour); inferred from the max if None.
    Binary images are drawn as stored (0 black, 1 white), like the course's figures.
    """
    x = np.asarray(images)
    if x.ndim == 3:  # (N,H,W) -> (N,H,W,1)
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images of shape (N,H,W,1|3), got {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        x = np.nan_to_num(x)
    if levels is None:
        levels = 2 if x.max(initial=0) <= 1 else 4
    y = np.clip(np.asarray(x, dtype=np.float32) / (levels - 1), 0, 1)
    y = (y * 255).round().astype(np.uint8)
    if y.shape[-1] == 1:
        y = np.repeat(y, 3, axis=-1)
    return y


def image_grid(images, ncols: int = 10, levels: int | None = None, pad: int = 1, scale: int = 1,
               pad_value: int = 128) -> np.ndarray:
    """Tile integer images (N,H,W,C) into one uint8 RGB array, `ncols` per row, with a thin grey border."""
    rgb = to_rgb(images, levels)
    n, h, w, _ = rgb.shape
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = rgb[i]
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid


def save_png(array: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
