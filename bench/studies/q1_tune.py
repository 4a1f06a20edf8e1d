"""Choose Q1's homework preset on a VALIDATION split of the training data, never on the test set.

    .venv/bin/python -m bench.studies.q1_tune

For each 1-D data set and both models, train on the first 80% of the training values and score the last 20% for
every setting of a small grid (epochs x batch size x learning rate, Adam); print the best settings per (model, set),
the setting with the best mean rank over all four, and, for that one only, the test loss after training on the
whole training set. Seeds are fixed, so the output repeats.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from core import data
from core.questions import get
from core.questions.base import Data
from core.questions.q1 import D

GRID = {"epochs": (10, 30, 60), "batch_size": (64, 128), "lr": (0.02, 0.05, 0.1, 0.2)}


def final_loss(key, train, test, d, hp):
    q = get(key)
    return q.train(Data(train, test, d=d), q.hparams(hp, "homework"), seed=0).result.test_losses[-1]


def main(argv=None):
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    t0 = time.time()
    settings = [dict(zip(GRID, v)) for v in itertools.product(*GRID.values())]
    cells = [(k, ds) for k in ("q1a", "q1b") for ds in ("1d-1", "1d-2")]
    val = {}
    for key, ds in cells:
        train, _ = data.load(ds)
        cut = int(0.8 * len(train))
        val[key, ds] = [final_loss(key, train[:cut], train[cut:], D[ds], hp) for hp in settings]
        best = int(np.argmin(val[key, ds]))
        print(f"{key} {ds}: best on validation {settings[best]} -> {val[key, ds][best]:.4f} nats/dim", flush=True)
    ranks = np.mean([np.argsort(np.argsort(v)) for v in val.values()], 0)
    pick = settings[int(np.argmin(ranks))]
    print(f"best mean rank over the four: {pick}")
    out = {"pick": pick, "validation": {}, "test": {}}
    for key, ds in cells:
        train, test = data.load(ds)
        out["validation"][f"{key} {ds}"] = round(val[key, ds][settings.index(pick)], 4)
        out["test"][f"{key} {ds}"] = round(final_loss(key, train, test, D[ds], pick), 4)
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
