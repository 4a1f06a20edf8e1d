"""Q4 training speed through the question code (core.questions.q4), to size the pretraining runs.

    python -m bench.kernels.q4 [--device cuda] [--concurrent 8]
Synthetic data of the real shapes (speed does not depend on the pixels): q4a (full and small tokenizer, batch
128 and 256) and q4b (homework transformer, batch 128) seconds per training step, measured on each question's
second epoch; tokenizing images with the full tokenizer; then, with --concurrent N, N worker processes at once
(half q4a full, half q4b) and each one's step time, as the ratio to the same job alone.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
from core.models.vqvae import VQVAE, VQTokenizer, VQVAEConfig
from core.questions.base import Data, RunContext
from core.questions.q4 import TOKEN_TRANSFORMER, TOKENIZER


class Recorder(RunContext):
    def __init__(self):
        self.events = []

    def emit(self, type, **fields):
        self.events.append({"type": type, **fields})

    def cancelled(self):
        return False


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 4, (n, 28, 28, 3), dtype=np.uint8)


def step_seconds(rec: Recorder) -> float:
    """Seconds per training step of the last epoch (the first one includes warm-up)."""
    start = next(e for e in rec.events if e["type"] == "start")
    return [e for e in rec.events if e["type"] == "epoch"][-1]["seconds"] / start["steps_per_epoch"]


def job_q4a(device, size="full", batch=128, steps=150):
    rec = Recorder()
    TOKENIZER.train(Data(images(batch * steps), images(1000, 1)), {"model_size": size, "epochs": 2,
                    "batch_size": batch}, device=device, ctx=rec)
    return step_seconds(rec)


def job_q4b(device, batch=128, steps=150, tok=None):
    rec = Recorder()
    torch.manual_seed(0)
    tok = tok or VQTokenizer(VQVAE(VQVAEConfig.preset("small")).to(device))
    hp = {k: v for k, v in TOKEN_TRANSFORMER.preset("homework").items() if k != "tokenizer"}
    TOKEN_TRANSFORMER.train(Data(images(batch * steps), images(1000, 1), tokenizer=tok),
                            {**hp, "epochs": 2, "batch_size": batch}, device=device, ctx=rec)
    return step_seconds(rec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--concurrent", type=int, default=0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--worker", choices=["q4a", "q4b"])
    args = ap.parse_args(argv)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if args.worker:  # one job of the concurrent test
        t = job_q4a(args.device, steps=args.steps) if args.worker == "q4a" else job_q4b(args.device, steps=args.steps)
        print(json.dumps({"job": args.worker, "step_s": t}))
        return
    dev = args.device
    print(f"device {torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu'}, torch {torch.__version__}")
    alone = {}
    for name, fn in [("q4a full b128", lambda: job_q4a(dev, "full", 128, args.steps)),
                     ("q4a full b256", lambda: job_q4a(dev, "full", 256, args.steps)),
                     ("q4a small b128", lambda: job_q4a(dev, "small", 128, args.steps)),
                     ("q4b homework b128", lambda: job_q4b(dev, 128, args.steps))]:
        alone[name] = fn()
        print(f"{name:20s} {alone[name] * 1e3:7.2f} ms/step  -> {alone[name] * 469 / 60:5.2f} min per 60k-image "
              f"epoch at batch 128 (x469 steps)" if "b128" in name else
              f"{name:20s} {alone[name] * 1e3:7.2f} ms/step  -> {alone[name] * 235 / 60:5.2f} min per 60k-image epoch")
    tok = VQTokenizer(VQVAE(VQVAEConfig.preset("full")).to(dev))
    x = images(20000)
    tok.quantize(x[:1000])
    if dev == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    tok.quantize(x)
    print(f"tokenize 20k images, full tokenizer: {time.perf_counter() - t:.2f} s")
    if args.concurrent:
        jobs = ["q4a" if i % 2 == 0 else "q4b" for i in range(args.concurrent)]
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "bench.kernels.q4", "--worker", j, "--device", dev, "--steps",
                                   str(args.steps)], cwd=ROOT, stdout=subprocess.PIPE, text=True) for j in jobs]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        print(f"{args.concurrent} processes at once ({time.perf_counter() - t:.0f} s wall):")
        for o in outs:
            base = alone["q4a full b128" if o["job"] == "q4a" else "q4b homework b128"]
            print(f"  {o['job']}: {o['step_s'] * 1e3:7.2f} ms/step = {o['step_s'] / base:4.1f}x alone")


if __name__ == "__main__":
    main()
