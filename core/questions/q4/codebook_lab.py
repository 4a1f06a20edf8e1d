"""Q4's codebook lab: switch codes off, shrink the codebook (most used, or k-means), perturb it, and measure what
the reconstructions lose (the Q4 page's lab; core.codebook does the edits)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ...models.vqvae import VQTokenizer
from .tokens import TOKENS

LAB_METHODS = ("most_used", "kmeans")


def lab_usage(tok: VQTokenizer, z_e: torch.Tensor) -> np.ndarray:
    """(K,) how often each code is chosen for encoder outputs z_e (B,7,7,D)."""
    return np.bincount(tok.quantize_latents(z_e).cpu().numpy().ravel(), minlength=tok.n_embeddings)


def lab_tokenizer(tok: VQTokenizer, z_usage: torch.Tensor, k: int | None = None, method: str = "most_used",
                  off=(), scale: float = 0.0, seed: int = 0, usage: np.ndarray | None = None) -> VQTokenizer:
    """The codebook lab's edit, in this order: switch the codes `off` off; shrink to k codes ("most_used" keeps
    the k codes used most on z_usage, indices unchanged; "kmeans" makes k new codes, renumbered 0..k-1); add
    noise of `scale` x the codebook's rms to every code. The original tokenizer is never changed.
    usage: lab_usage of the tokenizer with `off` switched off, if already counted."""
    from ... import codebook as cb

    if method not in LAB_METHODS:
        raise ValueError(f"method must be one of {', '.join(LAB_METHODS)}; got {method!r}")
    out = cb.switch_off(tok, list(off)) if len(off) else tok
    if k is not None and (isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= out.n_active):
        raise ValueError(f"K must lie in 1..{out.n_active} (the codes still switched on); got {k}")
    if k is not None and int(k) < out.n_active:
        usage = lab_usage(out, z_usage) if usage is None else usage
        out = (cb.keep_most_used(out, None, int(k), usage=usage) if method == "most_used"
               else cb.kmeans_shrink(out, None, int(k), seed=seed, usage=usage))
    return cb.perturb(out, scale, seed) if scale > 0 else out


def lab_error(tok: VQTokenizer, images, z_e: torch.Tensor) -> dict:
    """Reconstruction error of the images (z_e: their encoder outputs): mse (0..3 scale), wrong (pixel share)."""
    from ... import codebook as cb

    return cb.reconstruction_error(tok, images, z_e)


def lab_curve(tok: VQTokenizer, z_usage, images, z_eval, ks, method="most_used", off=(), scale=0.0,
              seed=0) -> list[dict]:
    """Rate-distortion: for each K, the lab's edit with that K -> {k, bits (fixed-length, 49 log2 K), mse, wrong}."""
    from ... import codebook as cb

    usage = lab_usage(cb.switch_off(tok, list(off)) if len(off) else tok, z_usage)  # the same for every K
    rows = []
    for k in ks:
        t = lab_tokenizer(tok, z_usage, k, method, off, scale, seed, usage)
        rows.append({"k": int(k), "bits": fixed_bits(k), **lab_error(t, images, z_eval)})
    return rows


# ----- what an image costs in bits (the page's words, and the numbers in them)
def fixed_bits(k: int) -> float:
    """A fixed-length code: 49 tokens of log2 K bits each, whatever the images. An upper bound on the cost."""
    return TOKENS * math.log2(k)


def usage_bits(usage) -> tuple[float, float]:
    """-> (perplexity, bits per image) of tokens coded by how often each code is used (counts `usage`): 49 tokens of
    log2(perplexity) = the entropy of the code histogram, in bits."""
    p = np.asarray(usage, float)
    p = p[p > 0] / p.sum()
    bits = float(-(p * np.log2(p)).sum())
    return 2.0 ** bits, TOKENS * bits


def prior_bits(nats_per_token: float) -> float:
    """Bits per image when a model with this test loss codes the 49 tokens (arithmetic coding): 49·loss/ln 2."""
    return TOKENS * nats_per_token / math.log(2)


def bits_text(reference: float) -> str:
    """The page's account of what an image costs in bits; `reference` is the course's Q4b test loss (nats/token)."""
    return (f"A token names one of K codes, so a fixed-length code spends {TOKENS}·log₂K bits per image "
            f"({fixed_bits(1024):.0f} for K = 1024): an upper bound. Coding each token by how often its code is used "
            f"costs {TOKENS}·log₂(perplexity) bits per image on average; coding it with the Q4b transformer's "
            f"probabilities, {TOKENS}·loss/ln 2: the course's {reference} nats/token is ≈ "
            f"{prior_bits(reference):.0f} bits.")


def rd_title(k: int) -> str:
    """The rate-distortion chart's title: what its points are (edits of one codebook, not tokenizers per K)."""
    return f"edits of one tokenizer's codebook (its decoder trained for K = {k})"


def rd_caption(k: int) -> str:
    return (f"Each point is this codebook edit at one K, measured on 200 test images, with the encoder and decoder "
            f"trained for {k} codes left as they are: not a tokenizer trained at each K (one would fit its encoder "
            f"and decoder to its K codes). The rate is the fixed-length {TOKENS}·log₂K, an upper bound. Fewer codes "
            "cost fewer bits and reconstruct worse; k-means places its K codes where the data is.")


def rd_figure(rows, current: dict, full: dict, method_label: str):
    """The lab's rate-distortion chart: the edit at every K (lab_curve rows), the trained codebook (`full`: k, bits,
    mse) and the learner's (`current`), titled with what its points are (rd_title)."""
    import plotly.graph_objects as go

    from ... import viz

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r["bits"] for r in rows], y=[r["mse"] for r in rows], mode="lines+markers",
                             name=f"K = 1, 4, 16, … ({method_label})", text=[f"K = {r['k']}" for r in rows],
                             hovertemplate="%{text}<br>%{x:.0f} bits / image<br>MSE %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[full["bits"]], y=[full["mse"]], mode="markers", name="the trained codebook",
                             marker=dict(symbol="circle-open", size=14, color="gray", line=dict(width=2))))
    fig.add_trace(go.Scatter(x=[current["bits"]], y=[current["mse"]], mode="markers",
                             name=f"your codebook (K = {current['k']})",
                             marker=dict(symbol="star", size=18, color=viz.TEST_COLOR)))
    fig.update_layout(title=dict(text=rd_title(full["k"]), font=dict(size=13)),
                      xaxis_title=f"rate: fixed-length bits per image = {TOKENS}·log₂K",
                      yaxis_title="distortion: test MSE (0..3 scale)", height=420, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.2, x=0, yanchor="top"))
    return fig


def token_picture(idx, n_codes: int, cell: int = 4) -> np.ndarray:
    """Token grids (B,7,7) -> uint8 RGB (B,7*cell,7*cell,3): one fixed random colour per code index."""
    palette = np.random.default_rng(1234).integers(30, 256, (n_codes, 3)).astype(np.uint8)
    return palette[np.asarray(idx)].repeat(cell, 1).repeat(cell, 2)
