"""KV-cache benchmark for the Q3 transformer (colored MNIST shape: 784 pixel tokens after <bos>, vocabulary 64+1,
d_model 128, 2 layers, 4 heads). Every ratio printed is measured within this one run. Random weights: it is timing.

  (a) sampling 100 images with vs without the cache, same model, same sampler, same random numbers
  (b) the cached sampler's time against its arithmetic at the measured matmul rate (and its cache reads at the
      measured read bandwidth)
  (c) Hugging Face transformers GPT-2 generate(use_cache=True) on the same configuration (skipped if missing)
  (d) training throughput (tokens/s) at batch 32 on 785- and 401-token sequences

Usage: python -m bench.kernels.kvcache [--n 100] [--uncached-every K] [--repeats R] [--skip-hf] [--skip-train]
                                      [--device cpu|cuda]   (cuda: every timing synchronises the GPU first)
The uncached sampler's step at position t costs one forward over t tokens whatever the tokens are, so by default
it is timed exactly at every K-th position (K=8, best of --repeats) on the cached run's tokens and the total is
the sum of the linear interpolation over all positions; --uncached-every 1 runs the whole uncached sampler instead.
The cached sampler runs before, halfway through and after that timing; the best run counts.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from core.models.transformer import Transformer, TransformerConfig, gumbel_noise, sample

BOS, STEPS = 64, 784
CFG = TransformerConfig(vocab_size=65, block_size=STEPS + 1, d_model=128, n_heads=4, n_layers=2)


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(f):
    sync()
    s = time.perf_counter()
    out = f()
    sync()
    return out, time.perf_counter() - s


def sample_flops(cfg: TransformerConfig, n: int, steps: int) -> float:
    """Multiply-adds x 2 of the cached sampler: every step one token per sequence through every layer."""
    d, V = cfg.d_model, cfg.vocab_size
    per_token_dense = cfg.n_layers * (3 * d * d + d * d + 8 * d * d) + d * V  # qkv, proj, mlp, head
    attn = cfg.n_layers * 2 * d * sum(t + 1 for t in range(steps))  # q.K and att.V over t+1 keys
    return 2.0 * n * (steps * per_token_dense + attn)


def cache_bytes_read(cfg: TransformerConfig, n: int, steps: int) -> float:
    """Bytes of K and V the cached steps read (float32): every step reads all earlier keys and values."""
    return 4.0 * n * cfg.n_layers * 2 * cfg.d_model * sum(t + 1 for t in range(steps))


def matmul_rate(size=1024, reps=10) -> float:
    a, b = torch.randn(size, size, device=DEVICE), torch.randn(size, size, device=DEVICE)
    a @ b
    _, t = timed(lambda: [a @ b for _ in range(reps)])
    return 2 * size**3 * reps / t


def read_bandwidth(mb=160, reps=10) -> float:
    x = torch.randn(int(mb * 2**20 / 4), device=DEVICE)
    x.sum()
    _, t = timed(lambda: [x.sum() for _ in range(reps)])
    return x.numel() * 4 * reps / t


def part_a(model, n, every, seed, repeats):
    print(f"\n(a) {n} samples x {STEPS} steps, with vs without the KV cache")
    sample(model, n, 50, [BOS], True)  # warm-up (first calls allocate and start threads)
    sample(model, n, 50, [BOS], False)

    def cached_run():
        return timed(lambda: sample(model, n, STEPS, [BOS], True, torch.Generator().manual_seed(seed),
                                    return_times=True))

    runs = [cached_run()]  # cached runs before, during and after the uncached timing: both meet the same load
    tok_c = runs[0][0][0]
    if every == 1:  # the whole uncached sampler, once
        g = torch.Generator().manual_seed(seed)
        (tok_u, times_u), t_unc = timed(lambda: sample(model, n, STEPS, [BOS], False, g, return_times=True))
        same = torch.equal(tok_u, tok_c)
        how = "measured in full"
    else:  # time the uncached step exactly at every k-th position, on the cached run's tokens
        noise = gumbel_noise(STEPS, n, CFG.vocab_size, torch.Generator().manual_seed(seed), DEVICE)
        pos = sorted(set(range(0, STEPS, every)) | {STEPS - 1})
        measured, agree = [], 0
        with torch.inference_mode():
            for i, s in enumerate(pos):
                if i == len(pos) // 2:
                    runs.append(cached_run())
                best = math.inf
                for _ in range(repeats):
                    sync()
                    start = time.perf_counter()
                    logits = model(tok_c[:, : s + 1])[:, -1]
                    nxt = (logits.float() + noise[s]).argmax(-1)
                    sync()
                    best = min(best, time.perf_counter() - start)
                measured.append(best)
                agree += int(torch.equal(nxt, tok_c[:, s + 1]))
        times_u = np.interp(np.arange(STEPS), pos, measured)
        t_unc = float(times_u.sum())
        same = agree == len(pos)
        how = (f"{len(pos)} of {STEPS} step lengths timed exactly (every {every}th, best of {repeats}), the rest "
               f"linearly interpolated and summed")
    runs.append(cached_run())
    assert all(torch.equal(r[0][0], tok_c) for r in runs)
    (_, times_c), t_cached = min(runs, key=lambda r: r[1])
    print(f"  cached:   {t_cached:8.2f} s  (best of {len(runs)}: {', '.join(f'{r[1]:.2f}' for r in runs)}; "
          f"{1e3 * t_cached / STEPS:.2f} ms/step; step 1 {1e3 * times_c[1]:.2f} ms, last {1e3 * times_c[-1]:.2f} ms)")
    print(f"  uncached: {t_unc:8.2f} s  ({how}; step 1 {1e3 * times_u[0]:.2f} ms, last {1e3 * times_u[-1]:.2f} ms)")
    print(f"  tokens identical: {same}" + ("" if every == 1 else " (uncached step at each timed position, "
                                                                 "same prefix and noise, vs the cached token)"))
    print(f"  SPEED-UP cached vs uncached: {t_unc / t_cached:.1f}x")
    return t_cached


def part_b(t_cached, n):
    print("\n(b) cached sampler vs the work it must do")
    flops, nbytes = sample_flops(CFG, n, STEPS), cache_bytes_read(CFG, n, STEPS)
    rate, bw = matmul_rate(), read_bandwidth()
    print(f"  arithmetic: {flops / 1e9:.1f} GFLOP -> achieved {flops / t_cached / 1e9:.1f} GFLOP/s; "
          f"measured matmul (1024^3) {rate / 1e9:.1f} GFLOP/s -> {flops / rate:.2f} s at that rate "
          f"({100 * flops / rate / t_cached:.0f}% of the run)")
    print(f"  cache reads: {nbytes / 1e9:.1f} GB -> {nbytes / bw:.2f} s at the measured read bandwidth "
          f"{bw / 1e9:.1f} GB/s ({100 * nbytes / bw / t_cached:.0f}% of the run)")


def part_c(model, n, seed, repeats):
    print("\n(c) Hugging Face transformers GPT-2 generate(use_cache=True), same configuration")
    try:
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        print("  skipped: transformers is not installed (pip install -r bench/requirements.txt)")
        return
    transformers.logging.set_verbosity_error()
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=65, n_positions=STEPS + 1, n_embd=128, n_layer=2, n_head=4,
                                    bos_token_id=BOS, eos_token_id=None)).eval().to(DEVICE)
    ids = torch.full((n, 1), BOS, device=DEVICE)

    def hf_generate():  # top_k=0: sample from the full softmax, as ours does (HF's default would keep 50)
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=STEPS,
                              min_new_tokens=STEPS, use_cache=True, top_k=0, top_p=1.0, temperature=1.0,
                              pad_token_id=BOS)
        assert out.shape == (n, STEPS + 1), out.shape

    torch.manual_seed(seed)
    t_hf, t_ours = [], []
    for _ in range(repeats):  # alternate, so both meet the same load on a shared machine
        t_hf.append(timed(hf_generate)[1])
        t_ours.append(timed(lambda: sample(model, n, STEPS, [BOS], True, torch.Generator().manual_seed(seed)))[1])
    fmt = lambda ts: ", ".join(f"{t:.2f}" for t in ts)  # noqa: E731
    print(f"  transformers {transformers.__version__} ({hf.config._attn_implementation} attention, DynamicCache): "
          f"best {min(t_hf):.2f} s ({fmt(t_hf)}; {1e3 * min(t_hf) / STEPS:.1f} ms/step)")
    print(f"  ours, cached, alternating with it: best {min(t_ours):.2f} s ({fmt(t_ours)})")
    print(f"  SPEED-UP ours vs HF generate: {min(t_hf) / min(t_ours):.1f}x (best vs best)")


def part_d(batch=32, reps=5):
    print(f"\n(d) training throughput, batch {batch}, Adam, homework architecture (d128, 4 heads, 2 layers)")
    for T in (785, 401):
        torch.manual_seed(0)
        model = Transformer(TransformerConfig(vocab_size=65, block_size=T)).to(DEVICE)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randint(0, 65, (batch, T), device=DEVICE)

        def train_step():
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        train_step()
        _, t = timed(lambda: [train_step() for _ in range(reps)])
        tok = batch * (T - 1) * reps / t  # predicted tokens per second
        print(f"  {T}-token sequences: {1e3 * t / reps:.0f} ms/step, {tok:,.0f} tokens/s "
              f"-> one epoch of 60,000 such images ~ {60000 * (T - 1) / tok / 60:.1f} min")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--uncached-every", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2, help="timings are the best of this many (shared machine)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}")
    torch.manual_seed(args.seed)
    model = Transformer(CFG).eval().to(DEVICE)
    t_cached = part_a(model, args.n, args.uncached_every, args.seed, args.repeats)
    part_b(t_cached, args.n)
    if not args.skip_hf:
        part_c(model, args.n, args.seed, args.repeats)
    if not args.skip_train:
        part_d()


if __name__ == "__main__":
    main()
