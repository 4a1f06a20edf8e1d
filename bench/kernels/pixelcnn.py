"""PixelCNN on CPU: fast (cropped) vs plain masked convs for training, fast vs full-recomputation sampling.

    python -m bench.kernels.pixelcnn [--steps 6] [--sample-steps 8] [--keep-freed-memory]

1. Training-step throughput (forward + backward + Adam step, batch 128) of the same net with the same weights,
   once with plain masked convs (full k x k kernel times mask) and once with cropped kernels, each in NCHW and
   in channels_last memory format; variants run round-robin; best-of-N step time per variant (the shared
   machine's contention only adds time), medians printed too. Q2a net on 28x28x1,
   Q2b net on 20x20x3. Ratios are plain / fast step time, measured in this one run.
2. Sampling 100 images (random weights): incremental (cached) steps vs re-running the whole net for every pixel.
   The full sampler is timed over its first --sample-steps pixels and extrapolated to the whole image (it says
   so). Checks printed with it: the fast sampler's probabilities vs one full forward pass over its samples, and
   the full sampler's first pixels vs the fast sampler's for the same seed.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from core.models.pixelcnn import PixelCNN, Q2A, Q2B, loss, per_pixel_probs, sample


def train_bench(name, cfg, shape, steps, batch=128):
    H, W, C = shape
    torch.manual_seed(0)
    x = torch.randint(0, cfg["n_values"], (batch, H, W, C))
    ref = PixelCNN(**cfg, fast=False, channels_last=False)
    variants = {}
    for fast, cl in [(False, False), (False, True), (True, False), (True, True)]:
        m = PixelCNN(**cfg, fast=fast, channels_last=cl)
        m.load_state_dict(ref.state_dict())
        variants[(fast, cl)] = (m, torch.optim.Adam(m.parameters(), lr=1e-3))
    label = {(False, False): "plain NCHW", (False, True): "plain channels_last",
             (True, False): "fast NCHW", (True, True): "fast channels_last"}

    def step(m, opt):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss(m, x).backward()
        opt.step()
        return time.perf_counter() - t

    # all variants compute the same function (same weights, same batch): largest logit difference to the reference
    with torch.no_grad():
        ref_logits = variants[(False, False)][0](x)
        dmax = max((m(x) - ref_logits).abs().max().item() for m, _ in variants.values())
    for k in variants:
        step(*variants[k])                                   # warm-up
    times = {k: [] for k in variants}
    for _ in range(steps):
        for k in variants:
            times[k].append(step(*variants[k]))
    best = {k: min(v) for k, v in times.items()}             # contention only adds time: best-of-N is the estimate
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n[{name}] train step (fwd+bwd+Adam), batch {batch}, {H}x{W}x{C}, "
          f"{sum(p.numel() for p in ref.parameters())} params, {steps} steps each, round-robin "
          f"(logits agree to {dmax:.1e})")
    for k in variants:
        print(f"  {label[k]:20s} best {best[k]:6.3f} s/step ({batch / best[k]:5.1f} img/s)   median {med[k]:6.3f} s")

    def ratio(a, b):
        return f"{best[a] / best[b]:.2f}x (medians: {med[a] / med[b]:.2f}x)"
    P, PC, F_, FC = (False, False), (False, True), (True, False), (True, True)
    print(f"  fast channels_last vs plain NCHW (the reference) : {ratio(P, FC)}")
    print(f"  fast vs plain, both NCHW                         : {ratio(P, F_)}")
    print(f"  fast vs plain, both channels_last                : {ratio(PC, FC)}")
    bp = min((P, PC), key=best.get)
    bf = min((F_, FC), key=best.get)
    print(f"  best fast vs best plain (either format)          : {ratio(bp, bf)}")


class _Stop(Exception):
    pass


def sample_bench(name, cfg, shape, n, k_steps):
    H, W, C = shape
    torch.manual_seed(0)
    model = PixelCNN(**cfg)                                  # defaults: fast convs, channels_last; random weights
    t = time.perf_counter()
    xs, p_fast = sample(model, n, (H, W), torch.Generator().manual_seed(0), return_probs=True)
    t_fast = time.perf_counter() - t
    # exactness: the probabilities the fast sampler drew from vs one full forward pass over its samples
    diff = (per_pixel_probs(model, xs) - p_fast).abs().max().item()

    # full recomputation: time the first k_steps pixels (after one untimed forward to warm up), same seed
    seen = {}

    def stop_after(r, c, x):
        seen["k"] = seen.get("k", 0) + 1
        if seen["k"] == k_steps:
            seen["x"] = x.clone()
            raise _Stop
    with torch.inference_mode():
        model(xs)
    t = time.perf_counter()
    try:
        sample(model, n, (H, W), torch.Generator().manual_seed(0), fast=False, on_pixel=stop_after)
    except _Stop:
        pass
    t_k = time.perf_counter() - t
    t_full = t_k / k_steps * H * W
    same = torch.equal(seen["x"].reshape(n, -1, C)[:, :k_steps], xs.reshape(n, -1, C)[:, :k_steps])
    print(f"\n[{name}] sampling {n} images {H}x{W}x{C} ({H * W} pixel steps), random weights")
    print(f"  fast (cached, one position per layer per step): {t_fast:8.2f} s  (measured, whole image)")
    print(f"  full recomputation for every pixel            : {t_full:8.2f} s  (EXTRAPOLATED: first "
          f"{k_steps} pixels took {t_k:.2f} s)")
    print(f"  ratio full / fast: {t_full / t_fast:.1f}x")
    print(f"  max |p_fast - p_full-forward| over all pixels: {diff:.1e}; "
          f"first {k_steps} pixels identical to the full sampler's (same seed): {same}")


def keep_freed_memory():
    """Ask glibc malloc to keep freed memory instead of returning it to the OS: big activations are then not
    page-faulted in afresh at every step (what MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ do from outside)."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per variant")
    ap.add_argument("--sample-steps", type=int, default=8, help="pixels timed for the full sampler")
    ap.add_argument("--keep-freed-memory", action="store_true", help="glibc mallopt: keep freed memory (see below)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-sample", action="store_true")
    a = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    if a.keep_freed_memory:
        print(f"malloc keeps freed memory: {keep_freed_memory()}")
    if not a.skip_train:
        train_bench("Q2a net", Q2A, (28, 28, 1), a.steps)
        train_bench("Q2b net", Q2B, (20, 20, 3), a.steps)
    if not a.skip_sample:
        sample_bench("Q2a net", Q2A, (28, 28, 1), 100, a.sample_steps)
        sample_bench("Q2b net", Q2B, (20, 20, 3), 100, a.sample_steps)


if __name__ == "__main__":
    main()
