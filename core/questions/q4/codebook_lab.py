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
    """Rate-distortion: for each K, the lab's edit with that K -> {k, bits (49 log2 K), mse, wrong}."""
    from ... import codebook as cb

    usage = lab_usage(cb.switch_off(tok, list(off)) if len(off) else tok, z_usage)  # the same for every K
    rows = []
    for k in ks:
        t = lab_tokenizer(tok, z_usage, k, method, off, scale, seed, usage)
        rows.append({"k": int(k), "bits": TOKENS * math.log2(k), **lab_error(t, images, z_eval)})
    return rows


def token_picture(idx, n_codes: int, cell: int = 4) -> np.ndarray:
    """Token grids (B,7,7) -> uint8 RGB (B,7*cell,7*cell,3): one fixed random colour per code index."""
    palette = np.random.default_rng(1234).integers(30, 256, (n_codes, 3)).astype(np.uint8)
    return palette[np.asarray(idx)].repeat(cell, 1).repeat(cell, 2)
