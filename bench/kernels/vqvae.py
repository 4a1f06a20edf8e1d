"""VQ-VAE tokenizer speed on this machine: a training step of the full and the small config, and the codebook
lab's operations (quantize + decode, rate-distortion). Ratios are measured within one run.

    flock /tmp/cpu.lock .venv/bin/python -m bench.kernels.vqvae [--threads 2] [--batch 128]
    flock /tmp/cpu.lock .venv/bin/python -m bench.kernels.vqvae --train mnist-colored --seconds 150
The second form trains a small tokenizer on real data for a fixed time and reports test reconstruction error
and codebook usage (nothing is saved).
"""
import argparse
import time

import numpy as np
import torch

from core import codebook as lab
from core.models.vqvae import VQVAE, VQTokenizer, VQVAEConfig, vqvae_loss


def step_seconds(model, x, steps):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            t = time.perf_counter()
        loss = vqvae_loss(model, x).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / steps


def timed(fn, repeat=3):
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def speed(args):
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.integers(0, 4, (args.batch, 28, 28, 3), dtype=np.uint8))
    res = {}
    for name, steps in (("full", 5), ("small", 20)):
        torch.manual_seed(0)
        model = VQVAE(VQVAEConfig.preset(name))
        n_params = sum(p.numel() for p in model.parameters())
        res[name] = step_seconds(model, x, steps)
        print(f"{name:5s} {n_params / 1e6:.2f} M params: {res[name] * 1e3:7.1f} ms / training step at batch "
              f"{args.batch} ({args.batch / res[name]:.0f} images/s; one 60k epoch "
              f"{60000 / args.batch * res[name] / 60:.1f} min)")
        tok = VQTokenizer(model)
        imgs = rng.integers(0, 4, (100, 28, 28, 3), dtype=np.uint8)
        print(f"      quantize+decode 100 images {timed(lambda: tok.reconstruct(imgs)) * 1e3:.0f} ms; "
              f"rate-distortion (100 images, K = 1,4,16,64,256,1024, k-means) "
              f"{timed(lambda: lab.rate_distortion(tok, imgs, [1, 4, 16, 64, 256, 1024]), 1):.2f} s")
    print(f"full / small training step time: {res['full'] / res['small']:.1f}x")


def train(args):
    from core.data import load
    tr, te = load(args.train)[:2]
    tr, te = torch.as_tensor(tr), te[:2000]
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig.preset(args.preset, ema_decay=args.ema))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    g = torch.Generator().manual_seed(0)
    tok = VQTokenizer(model)
    print(f"test before: {lab.reconstruction_error(tok, te)}")
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        model.train()
        loss = vqvae_loss(model, tr[torch.randint(len(tr), (args.batch,), generator=g)])
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step:5d} {time.perf_counter() - t0:5.0f}s recon {loss.recon.item():.4f} "
                  f"vq {loss.vq.item():.4f} perplexity {loss.perplexity:6.1f} usage {loss.usage}", flush=True)
    tok = VQTokenizer(model)
    used = len(np.unique(tok.quantize(te)))
    print(f"{args.train} {args.preset} ema_decay={args.ema}: {step} steps x batch {args.batch} "
          f"({step * args.batch / len(tr):.2f} epochs) in {time.perf_counter() - t0:.0f} s; "
          f"test (first {len(te)}): {lab.reconstruction_error(tok, te)}, codes used {used}/{tok.n_embeddings}")
    t = time.perf_counter()
    for method in ("most_used", "kmeans"):  # usage counted on training images, error on test images
        for r in lab.rate_distortion(tok, te[:500], [4, 16, 64, 256, 1024], method, usage_images=tr[:5000]):
            print(f"  {method:9s} K={r['k']:4d} {r['bits']:5.0f} bits/image  mse {r['mse']:.4f}  "
                  f"wrong {r['wrong']:.3f}  codes used {r['used']}")
    print(f"  (rate-distortion tables: {time.perf_counter() - t:.1f} s)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--train", default=None, help="a data set name: train on it instead of timing")
    p.add_argument("--preset", default="small")
    p.add_argument("--seconds", type=float, default=150)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema", type=float, default=VQVAEConfig.ema_decay, help="0: codebook loss instead of EMA")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train(args) if args.train else speed(args)


if __name__ == "__main__":
    main()
