"""What the shapes' positions cost: a Q2a PixelCNN or Q3a iGPT on binary shapes placed anywhere vs the same shapes centred.

    python -m bench.studies.shapes_centring [--question q2a|q3a] [--preset homework|quick] [--epochs 10] [--jitter 0 | --anywhere]

Trains the question's model (same code as a background run, no preview samples) on binary shapes made by
`core.data.shapes.make(jitter=...)`: --anywhere = data version 1 (centre anywhere in the image), --jitter J = every
centre within +-J pixels of the image centre (0 = exactly centred, as the course's figures show and as the shipped
set, version 2, is). Same kinds,
sizes and rotations either way. Prints the test loss after every epoch and the wall time.
Results in bench/RESULTS.md ("Q2a homework preset on CPU, binary shapes").
"""
from __future__ import annotations

import argparse
import time

from core.data import shapes
from core.questions.base import Data, RunContext
from core import questions


class Printer(RunContext):
    def __init__(self):
        self.t0 = time.time()

    def emit(self, kind, **kw):
        if kind == "test":
            print(f"  epoch {kw['epoch']:3d}  test {kw['loss']:.4f} nats/dim  {time.time() - self.t0:6.0f} s", flush=True)

    def cancelled(self):
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--question", default="q2a", choices=("q2a", "q3a"))
    ap.add_argument("--preset", default="homework", help="a preset of the question (homework, quick, ...)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--jitter", type=float, default=0.0, help="centre within +-J px of the image centre")
    g.add_argument("--anywhere", action="store_true", help="data version 1: centre anywhere in the image")
    a = ap.parse_args(argv)
    q = questions.get(a.question)
    hp = dict(q.preset(a.preset))
    if a.question == "q3a":
        hp["preview_samples"] = 0
    if a.epochs:
        hp["epochs"] = a.epochs
    d = shapes.make(jitter=None if a.anywhere else a.jitter)
    print(f"{a.question} {a.preset} preset {hp} on {'anywhere' if a.anywhere else f'centred (+-{a.jitter} px)'} shapes")
    log = Printer()
    res = q.train(Data(d["train"], d["test"], name="shapes"), hp, ctx=log).result   # log keeps nothing: no previews
    print(f"final test loss {res.test_losses[-1]:.4f} nats/dim after {len(res.test_losses) - 1} epochs, "
          f"{time.time() - log.t0:.0f} s")


if __name__ == "__main__":
    main()
