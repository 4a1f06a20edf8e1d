"""One cached attention step (one layer, batch 100, 4 heads of 32, one query) in two cache layouts, timed at
several prefix lengths t. Every time is the best of 5 rounds of 30 calls; both layouts run in the same process.

  python -m bench.kernels.attention_layouts

  per-head  (the KV cache's layout): keys (B, h, hd, T) transposed, values (B, h, T, hd); q.K and att.V are
            batched products over the B*h heads, one query row each.
  folded    keys and values (B, T, h*hd); q.K as one (t x 128) @ (128 x h) product per sequence against a
            block-diagonal q, att.V as (h x t) @ (t x 128), keeping the diagonal blocks: B products instead of B*h,
            h times the arithmetic.
Result in bench/RESULTS.md (Transformer KV cache, "What was tried").
"""
import argparse
import time

import torch

B, h, hd, T = 100, 4, 32, 785
C = h * hd


def layouts():
    """The two layouts' attention steps, on the same random queries (seed 0): (per_head, folded), each f(t)."""
    torch.manual_seed(0)
    kt, v = torch.randn(B, h, hd, T), torch.randn(B, h, T, hd)  # per-head layout
    K2, V2 = torch.randn(B, T, C), torch.randn(B, T, C)  # folded layout
    q = torch.randn(B, h, hd)
    blocks = torch.eye(h).repeat_interleave(hd, 0)  # (C, h): column j is 1 on head j's rows

    def per_head(t):
        a = (q.unsqueeze(2) @ kt[..., :t]).softmax(-1)  # (B, h, 1, t)
        return a @ v[:, :, :t]  # (B, h, 1, hd)

    def folded(t):
        qbd = q.reshape(B, C, 1) * blocks  # (B, C, h) block-diagonal queries
        a = torch.bmm(K2[:, :t], qbd).softmax(1)  # (B, t, h)
        y = torch.bmm(a.transpose(1, 2), V2[:, :t])  # (B, h, C)
        return y.view(B, h, h, hd).diagonal(dim1=1, dim2=2)  # (B, hd, h)

    return per_head, folded


def best_ms(f, t, reps=30):
    f(t)
    best = float("inf")
    for _ in range(5):
        s = time.perf_counter()
        for _ in range(reps):
            f(t)
        best = min(best, (time.perf_counter() - s) / reps)
    return 1e3 * best


def main(argv=None):
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    per_head, folded = layouts()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per call, one layer")
    with torch.inference_mode():
        for t in (2, 50, 200, 400, 600, 785):
            a, b = best_ms(per_head, t), best_ms(folded, t)
            print(f"  t={t:4d}  per-head {a:.3f}  folded {b:.3f}  ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
