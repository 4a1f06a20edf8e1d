"""Q1 — one discrete variable: (a) a histogram, (b) a discretized mixture of logistics.

The worked example of a question module: fields with bounds, presets, `train` (usable in-process, as the
notebook functions do) and `run` (what a background worker calls).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..models.discrete1d import Histogram, LogisticMixture, nll
from ..train import TrainConfig, fit
from .base import Field, Question

D = {"1d-1": 20, "1d-2": 100}  # number of values of each 1-D data set

COMMON = (
    Field("epochs", 30, 1, 1000, help="passes over the 800 (set 1) or 8000 (set 2) training values"),
    Field("batch_size", 64, 1, 10000, label="batch size"),
    Field("lr", 0.05, 1e-5, 10.0, label="learning rate"),
    Field("optimizer", "adam", choices=("adam", "adamw", "sgd")),
)
PRESETS = {
    "homework": {},                                   # tuned: beats the course's reference on set 1
    "quick": {"epochs": 10, "batch_size": 128, "lr": 0.1},
}


class Q1(Question):
    datasets = ("1d-1", "1d-2")
    presets = PRESETS

    def build(self, d: int, hp: dict):
        raise NotImplementedError

    def train(self, train, test, d: int, hp: dict, seed: int = 0, device: str = "cpu", ctx=None):
        """Fit on int arrays; returns (model, TrainResult). Emits the learned distribution after every epoch."""
        hp = {**self.defaults(), **hp}
        train, test = np.asarray(train), np.asarray(test)
        if train.min() < 0 or train.max() >= d or test.min() < 0 or test.max() >= d:
            raise ValueError(f"values must lie in 0..{d - 1}")
        model = self.build(d, hp)

        def on_epoch_end(epoch, m):
            if ctx is not None:
                ctx.emit("dist", epoch=epoch, probs=self.distribution(m).tolist())

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          optimizer=hp["optimizer"], seed=seed, device=device)
        res = fit(model, nll, torch.as_tensor(train, dtype=torch.long), torch.as_tensor(test, dtype=torch.long),
                  cfg, ctx, on_epoch_end)
        return model, res

    @staticmethod
    def distribution(model) -> np.ndarray:
        with torch.no_grad():
            return model.log_probs().exp().cpu().numpy().astype(np.float64)

    def run(self, spec, ctx) -> dict:
        from .. import data

        train, test = data.load(spec.dataset)
        d = D[spec.dataset]
        ctx.emit("meta", d=d, train_counts=np.bincount(train, minlength=d).tolist())
        model, res = self.train(train, test, d, spec.hparams, spec.seed, ctx.device, ctx)
        ctx.save_checkpoint(model, {"question": self.key, "d": d, **spec.hparams})
        final = res.test_losses[-1]
        return {"test_loss": final, "bits_per_dim": final / math.log(2), "seconds": res.seconds,
                "probs": self.distribution(model).tolist()}


class HistogramQ(Q1):
    key, title = "q1a", "Histogram"
    fields = COMMON

    def build(self, d, hp):
        return Histogram(d)


class MixtureQ(Q1):
    key, title = "q1b", "Mixture of logistics"
    fields = COMMON + (Field("components", 4, 1, 50, help="number of logistic components"),)

    def check(self, hp, dataset):
        if dataset in D and hp["components"] > D[dataset]:
            return {"components": f"at most {D[dataset]} for this data set (one per value)"}
        return {}

    def build(self, d, hp):
        return LogisticMixture(d, hp["components"])


HISTOGRAM, MIXTURE = HistogramQ(), MixtureQ()
