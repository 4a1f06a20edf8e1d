"""The codebook lab: change a trained tokenizer's codebook and measure what it costs.

Every function takes a VQTokenizer and returns a new one (the original is never changed):
  keep_most_used(tok, images, K)  keep the K codes used most on `images`; the rest are switched off
  kmeans_shrink(tok, images, K)   K new codes: weighted k-means over the codes in use (weights = usage)
  switch_off(tok, codes)          switch individual codes off
  perturb(tok, scale, seed)       add Gaussian noise to the code vectors
A switched-off code never appears: an encoder output goes to its nearest *remaining* code, i.e. the code a
codebook without the switched-off ones would have chosen. Indices keep their meaning (so a token grid keeps
its colours); `compact(tok)` renumbers the active codes 0..K-1 when a dense K-code codebook is needed.
rate_distortion(tok, images, Ks) gives, per K, bits per image (49 log2 K) against reconstruction error.
"""
from __future__ import annotations

import numpy as np
import torch

from core.models.vqvae import VQTokenizer, bits_per_image


def _check_k(tok: VQTokenizer, k) -> int:
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"K must be a whole number; got {k!r}")
    k = int(k)
    if not 1 <= k <= tok.n_active:
        raise ValueError(f"K must lie in 1..{tok.n_active} (the codes this tokenizer has switched on); got {k}")
    return k


def code_usage(tok: VQTokenizer, images) -> np.ndarray:
    """(K,) int64: how many of the images' 49-token grids' positions chose each code."""
    return np.bincount(tok.quantize(images).ravel(), minlength=tok.n_embeddings)


def keep_most_used(tok: VQTokenizer, images, k: int, usage: np.ndarray | None = None) -> VQTokenizer:
    """Keep the k most used active codes (ties: lower index first); switch every other code off."""
    k = _check_k(tok, k)
    usage = code_usage(tok, images) if usage is None else np.asarray(usage)
    score = np.where(tok.active.cpu().numpy(), usage, -1)        # switched-off codes rank last
    keep = np.argsort(-score, kind="stable")[:k]
    active = torch.zeros(tok.n_embeddings, dtype=torch.bool)
    active[torch.as_tensor(keep)] = True
    return tok.with_codebook(active=active)


def switch_off(tok: VQTokenizer, codes) -> VQTokenizer:
    """Switch the given code indices off (they never appear again); at least one code must stay on."""
    codes = np.atleast_1d(np.asarray(codes, dtype=np.int64))
    if codes.size and (codes.min() < 0 or codes.max() >= tok.n_embeddings):
        raise ValueError(f"codes must lie in 0..{tok.n_embeddings - 1}; got {codes.min()}..{codes.max()}")
    active = tok.active.clone().cpu()
    active[torch.as_tensor(codes)] = False
    if not active.any():
        raise ValueError("cannot switch off every code: at least one must remain")
    return tok.with_codebook(active=active)


def perturb(tok: VQTokenizer, scale: float, seed: int = 0, codes=None) -> VQTokenizer:
    """Add N(0, (scale * rms)^2) noise to the code vectors (all, or just `codes`), rms = the codebook's
    root-mean-square entry, so scale 0.1 means noise a tenth the size of a typical code component."""
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0; got {scale}")
    cb = tok.codebook.cpu()
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(cb.shape, generator=g) * scale * cb.pow(2).mean().sqrt()
    if codes is not None:
        mask = torch.zeros(len(cb), 1)
        mask[torch.as_tensor(np.atleast_1d(codes), dtype=torch.long)] = 1
        noise = noise * mask
    return tok.with_codebook(codebook=cb + noise)


def weighted_kmeans(points: torch.Tensor, weights: torch.Tensor, k: int, iters: int = 10,
                    seed: int = 0) -> torch.Tensor:
    """points (N,D), weights (N,) > 0 -> (k,D) centroids. Weighted k-means++ start, then Lloyd steps;
    a centroid that loses all its points stays where it was."""
    g = torch.Generator().manual_seed(seed)
    chosen = [int(torch.multinomial(weights, 1, generator=g))]
    d2 = (points - points[chosen[0]]).pow(2).sum(1)                  # (N,) to the nearest chosen centroid
    for _ in range(k - 1):
        p = weights * d2
        chosen.append(int(torch.multinomial(p if p.sum() > 0 else weights, 1, generator=g)))
        d2 = torch.minimum(d2, (points - points[chosen[-1]]).pow(2).sum(1))
    centroids = points[chosen].clone()                               # (k,D)
    for _ in range(iters):
        assign = torch.cdist(points, centroids).argmin(1)            # (N,)
        mass = torch.zeros(k).index_add_(0, assign, weights)         # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points * weights[:, None])
        filled = mass > 0
        centroids[filled] = sums[filled] / mass[filled, None]
    return centroids


def kmeans_shrink(tok: VQTokenizer, images, k: int, iters: int = 10, seed: int = 0,
                  usage: np.ndarray | None = None) -> VQTokenizer:
    """A dense k-code tokenizer: weighted k-means over the active codes used on `images` (weights = usage).
    If k is at least the number of codes in use, those codes are kept exactly, padded with unused active ones."""
    k = _check_k(tok, k)
    usage = torch.as_tensor(code_usage(tok, images) if usage is None else usage, dtype=torch.float32)
    cb, active = tok.codebook.cpu(), tok.active.cpu()
    used = ((usage > 0) & active).nonzero().flatten()
    if k >= len(used):
        unused = (~(usage > 0) & active).nonzero().flatten()
        new = cb[torch.cat([used, unused])[:k]]
    else:
        new = weighted_kmeans(cb[used], usage[used], k, iters, seed)
    return tok.with_codebook(codebook=new)


def compact(tok: VQTokenizer) -> tuple[VQTokenizer, np.ndarray]:
    """Renumber the active codes 0..K-1: (dense tokenizer, old index of each new code)."""
    old = tok.active.nonzero().flatten().cpu()
    return tok.with_codebook(codebook=tok.codebook[old].cpu()), old.numpy()


def reconstruction_error(tok: VQTokenizer, images, z_e: torch.Tensor | None = None) -> dict:
    """mse: mean squared error in the 0..3 pixel scale; wrong: fraction of pixel channels that differ after
    rounding the reconstruction to 0..3. z_e: the images' encoder outputs, if already computed."""
    z_e = tok.encode(images) if z_e is None else z_e
    x = np.asarray(images, dtype=np.float32)
    x_hat = tok.decode(tok.quantize_latents(z_e).cpu())
    return {"mse": float(np.mean((x_hat - x) ** 2)),
            "wrong": float(np.mean(np.clip(np.rint(x_hat), 0, 3) != x))}


def rate_distortion(tok: VQTokenizer, images, ks, method: str = "kmeans", usage_images=None,
                    iters: int = 10, seed: int = 0) -> list[dict]:
    """For each K: shrink the codebook to K codes (method 'kmeans' or 'most_used'; usage counted on
    `usage_images`, default `images`) and measure it on `images`.
    Returns [{"k", "bits" (49 log2 K per image), "mse", "wrong", "used" (distinct codes on images)}]."""
    if method not in ("kmeans", "most_used"):
        raise ValueError(f"method must be 'kmeans' or 'most_used'; got {method!r}")
    ks = [_check_k(tok, k) for k in ks]
    usage = code_usage(tok, images if usage_images is None else usage_images)
    z_e = tok.encode(images)  # encode once, quantize many times
    rows = []
    for k in ks:
        small = (kmeans_shrink(tok, None, k, iters, seed, usage=usage) if method == "kmeans"
                 else keep_most_used(tok, None, k, usage=usage))
        idx = small.quantize_latents(z_e)
        rows.append({"k": k, "bits": bits_per_image(k), **reconstruction_error(small, images, z_e),
                     "used": int(len(torch.unique(idx)))})
    return rows
