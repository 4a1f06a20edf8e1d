"""How much memory a training run needs, and how much one run may use here: the guard in every question's check().

A run's peak, roughly:
    BASE                     the worker process (Python, torch, its threads: ~0.3 GB measured)
  + data                     the data set as the question holds it (uint8 images, token sequences)
  + 16 bytes per parameter   float32 weights, gradients and Adam's two moments
  + activations              what one minibatch's forward pass keeps for the backward pass, with the gradients and
                             temporaries of the backward pass itself
(or a larger one-off phase, e.g. tokenizing the images for Q4b/Q6.)

Activations per architecture, calibrated against the peak resident memory (VmHWM, reset just before) of two Adam
steps in a fresh CPU process (torch 2.13, one thread, after a warm-up step); "measured" below is that peak minus
the memory before the model was built, "estimated" is STEP + 16 bytes/parameter + activations:
  PixelCNN     3 floats per pixel per channel of every map kept for backward (fast convs keep their padded ReLU
               input; oneDNN's backward adds copies). q2a on 28x28, 32 filters, 4 layers, batch 32: 110 MB measured,
               109 MB estimated; batch 64: 173 / 166; 8 layers: 135 / 149; 64 filters: 167 / 174. q2b on 20x20x3,
               64 filters, 3 blocks, batch 32: 145 / 141; batch 64: 229 / 228; 8 blocks: 205 / 239; 120 filters and
               8 blocks: 336 / 411.
  transformer  25 floats per token per layer per d_model (17 kept: LayerNorms, Q/K/V, attention output, the 4x MLP
               twice; the rest gradients), + 4 per token per vocabulary entry (logits, log-softmax, their
               gradients). The fused attention kernels (CPU flash, CUDA memory-efficient) keep no T x T matrix:
               doubling T doubled the peak. d 64, 2 layers, T 400, batch 32: 234 / 221; batch 64: 420 / 391;
               T 784: 423 / 384; d 128, 4 layers: 652 / 713; d 128, V 1025, T 128, batch 64: 404 / 404.
  VQ-VAE       2 floats per value of every map kept + 1.5 per token per code (the distances to every code). small,
               K 1024, batch 128: 187 / 149; batch 256: 254 / 244; full, batch 64: 187 / 200; full, K 4096, D 256:
               269 / 287.
All within 25% of the measurements (a GPU keeps about the same tensors); good enough to refuse a run that cannot
fit, not to pack runs tightly.
"""
from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass

from . import data

MB, GB = 2**20, 2**30
FLOAT = 4                     # bytes
BASE = int(0.3 * GB)          # the worker process before it holds any data (measured: ~225 MB RSS + the runtime)
STEP = 50 * MB                # what every training step needed beyond its tensors, whatever its size (measured)
SHARE = 0.6                   # of the machine's memory that the runs together may use (the rest: OS, server, pages)


@dataclass
class Estimate:
    params: int               # parameters of the model
    activations: int          # bytes: one minibatch's activations (or the largest one-off phase)
    batch: int                # the minibatch they are for
    data: int = 0             # bytes: the data set as the run holds it

    @property
    def total(self) -> int:
        return BASE + self.data + STEP + 16 * self.params + self.activations


def size(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / MB:.0f} MB"


def count(n: float) -> str:
    return f"{n / 1e9:.1f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e4 \
        else f"{n:.0f}"


# ------------------------------------------------------------------------------------------------ the models
def conv(ci: int, co: int, k: int) -> int:
    return ci * co * k * k + co


def pixelcnn(batch: int, shape, n_values: int, filters: int, n_layers: int, kernel_size: int, residual: bool,
             layer_norm: bool) -> Estimate:
    """q2a (plain stack) / q2b (residual blocks) on images of `shape` (H, W, C)."""
    H, W, C = shape
    f, h, k = filters, filters // 2, kernel_size
    head = conv(f, f, 1) + conv(f, C * n_values, 1)
    if residual:
        params = conv(C, f, k) + n_layers * (conv(f, h, 1) + conv(h, h, k) + conv(h, f, 1) + 2 * f * layer_norm) \
            + 2 * f * layer_norm + head
        kept = 2 * f * n_layers + 3 * f            # per block: the norm's input, ReLU(norm), two half-width maps
    else:
        params = conv(C, f, k) + n_layers * conv(f, f, k) + 2 * f * layer_norm * (n_layers + 1) + head
        kept = f * (n_layers + 2)                  # every conv's (padded, ReLU'd) input
    kept += 2 * C * n_values                       # logits and their log-softmax
    return Estimate(params, 3 * FLOAT * batch * H * W * kept, batch)


def transformer(batch: int, tokens: int, d_model: int, layers: int, vocab: int) -> Estimate:
    """A Transformer (core.models.transformer) trained on sequences of `tokens` inputs (context tokens + 1)."""
    d = d_model
    params = vocab * d + (tokens + 1) * d + layers * (12 * d * d + 13 * d) + 2 * d + d * vocab + vocab
    return Estimate(params, FLOAT * batch * tokens * (25 * d * layers + 4 * d + 4 * vocab), batch)


def vqvae(batch: int, config) -> Estimate:
    """A VQ-VAE (core.models.vqvae) on 28x28x3 images: 14x14 and 7x7 feature maps, K codes of D numbers."""
    c = config
    h1, h2, r, L, D, K = c.hidden1, c.hidden2, c.res_hidden, c.n_res_layers, c.embedding_dim, c.n_embeddings
    res = L * (h2 * r * 9 + r * h2)
    params = conv(3, h1, 4) + conv(h1, h2, 4) + conv(h2, h2, 3) + res + conv(h2, D, 1) + K * D \
        + conv(D, h2, 3) + res + conv(h2, h1, 4) + conv(h1, 3, 4)
    kept = 2 * 196 * h1 + 49 * (2 * h2 + 2 * L * (h2 + r) + 2 * h2 + 2 * D) + 784 * 3 * 2
    return Estimate(params, FLOAT * batch * (2 * kept + 1.5 * 49 * K), batch)


def tokenizing(n_codes: int, batch: int = 1000) -> int:
    """Bytes Q4's `tokenize` takes per batch of images: the distances of 49 tokens per image to every code, and the
    encoder's maps (1000 images, K 1024: 442 MB measured, 500 MB estimated)."""
    return FLOAT * batch * 49 * (2 * n_codes + 512)


# ------------------------------------------------------------------------------------------------ the limit
def slots() -> int:
    """Runs at once on one device (the queue's setting ARLAB_SLOTS: default 1 on a CPU, 4 on a GPU)."""
    raw = os.environ.get("ARLAB_SLOTS", "")
    return max(1, int(raw)) if raw.strip() else (4 if gpu_bytes() else 1)


@functools.lru_cache(maxsize=1)
def gpu_bytes() -> int:
    """The first GPU's memory (0 without one), asked of nvidia-smi so that the server never starts CUDA itself."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
        return int(out.stdout.split()[0]) * MB if out.returncode == 0 else 0
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 0


def ram_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def worker_limit_bytes() -> int:
    """The memory one run may use: ARLAB_WORKER_MEM_MB if set, else on a GPU its memory over the runs that share it,
    else 60% of the machine's memory over the runs at once."""
    raw = os.environ.get("ARLAB_WORKER_MEM_MB", "")
    if raw.strip():
        return int(float(raw) * MB)
    gpu = gpu_bytes()
    return int((gpu if gpu else SHARE * ram_bytes()) / slots())


def refuse(est: Estimate | None, batch_field: str, size_field: str, lower: str) -> dict[str, str]:
    """{field: message} when the estimate exceeds what one run may use here; the message goes on the batch size
    unless the parameters alone are too many."""
    if est is None:
        return {}
    limit = worker_limit_bytes()
    if est.total <= limit:
        return {}
    field = size_field if 16 * est.params + BASE > limit else batch_field
    return {field: f"this configuration needs about {size(est.total)} to train (≈ {count(est.params)} parameters, "
                   f"activations for a batch of {est.batch}); one run may use {size(limit)} here: lower {lower}"}


# ------------------------------------------------------------------------------------------------ the data
def counts(dataset: str) -> tuple[int, int]:
    """(training, test) examples of a data set."""
    return data.SETS[dataset]["counts"]


def n_train(dataset: str, fraction: float = 1.0) -> int:
    """Training examples a run keeps (a share of them)."""
    return max(1, round(counts(dataset)[0] * fraction))


def images_bytes(dataset: str, copies: float = 1.0) -> int:
    """A data set's images (train + test) as uint8, `copies` times."""
    H, W, C = data.image_shape(dataset)
    return int(copies * sum(counts(dataset)) * H * W * C)
