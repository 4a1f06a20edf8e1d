"""The Q3c race exactly as the page runs it (core.questions.q3.race), on a shipped checkpoint, timed in one run.

  python -m bench.system.race [--model q3b-mnist-colored] [--n 100] [--seed 0] [--device cpu|cuda]

Prints both samplers' totals, their first/last step times, the speed-up and how many of the n samples are
identical. On a CPU the uncached half takes ~10+ minutes for 100 coloured-MNIST images; bench.kernels.kvcache
estimates it faster from timed step lengths.
"""
from __future__ import annotations

import argparse
import time

import torch

from core.questions.q3 import full_float32, race
from core.sources import load as load_model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="q3b-mnist-colored", help="a checkpoint name in pretrained/")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    model, config = load_model(f"pretrained:{a.model}", a.device)
    where = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; model {a.model}, {a.n} samples, seed {a.seed}")
    with full_float32():
        race(model, config, min(a.n, 4), seed=a.seed)  # warm-up: first calls allocate and pick kernels
        start = time.perf_counter()
        out = race(model, config, a.n, seed=a.seed)
        wall = time.perf_counter() - start
    tu, tc = sum(out["times_uncached"]), sum(out["times_cached"])
    for name, t, ts in (("uncached", tu, out["times_uncached"]), ("cached", tc, out["times_cached"])):
        print(f"  {name:8s} {t:8.2f} s  ({1e3 * t / len(ts):.2f} ms/step; step 1 {1e3 * ts[0]:.2f} ms, "
              f"last {1e3 * ts[-1]:.2f} ms)")
    print(f"  identical samples: {out['identical']} of {a.n}; race wall time {wall:.1f} s")
    print(f"  SPEED-UP cached vs uncached: {tu / tc:.1f}x")


if __name__ == "__main__":
    main()
