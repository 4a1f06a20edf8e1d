"""Q1 — one discrete variable: (a) a histogram, (b) a discretized mixture of logistics.

The worked example of a question module (see base.py for the contract): fields with bounds, presets, the
course's reference, `load_data`, `train` (usable in-process, as the notebook functions do) and `finish`.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import memory
from ..models.discrete1d import Histogram, LogisticMixture, nll
from ..train import TrainConfig, fit
from .base import Data, Field, Question, RunContext, Trained

D = {"1d-1": 20, "1d-2": 100}  # number of values of each 1-D data set

COMMON = (
    Field("epochs", 30, 1, 1000, help="passes over the 800 (set 1) or 8000 (set 2) training values"),
    Field("batch_size", 64, 1, 10000, label="batch size"),
    Field("lr", 0.05, 1e-5, 10.0, label="learning rate"),
    Field("optimizer", "adam", choices=("adam", "adamw", "sgd")),
)
PRESETS = {
    # chosen on a validation split of the TRAINING values (the last 20%), never on the test set, as the setting
    # with the best mean rank over both models and both sets (python -m bench.studies.q1_tune, bench/RESULTS.md)
    "homework": {"epochs": 60, "lr": 0.02},
    "quick": {"epochs": 10, "batch_size": 128, "lr": 0.1},
}


class Q1(Question):
    datasets = ("1d-1", "1d-2")
    presets = PRESETS
    # fine-tune (a run that starts from a finished one): a tenth of the homework rate, two short epochs
    finetune = {"epochs": 2, "lr": 0.002}

    def build(self, d: int, hp: dict):
        raise NotImplementedError

    def memory(self, hp, dataset):
        """A handful of parameters and a few floats per value: never near any limit."""
        k, d = hp.get("components", 1), D[dataset]
        return memory.Estimate(d + 3 * k, memory.FLOAT * 8 * (hp["batch_size"] + d * k), hp["batch_size"])

    def load_data(self, dataset, hp, ctx) -> Data:
        data = super().load_data(dataset, hp, ctx)
        data.d = D[dataset]
        ctx.emit("meta", d=data.d, train_counts=np.bincount(data.train, minlength=data.d).tolist())
        return data

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """Fit on int arrays in 0..data.d-1. Emits the learned distribution after every epoch."""
        hp = self.hparams(hp)
        d = data.d
        train, test = np.asarray(data.train), np.asarray(data.test)
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
        return Trained(model, {"question": self.key, "d": d, **hp}, res)

    @staticmethod
    def distribution(model) -> np.ndarray:
        with torch.no_grad():
            return model.log_probs().exp().cpu().numpy().astype(np.float64)

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        return {**self.summary(trained), "probs": self.distribution(trained.model).tolist()}

    def rebuild(self, config):
        return self.build(int(config["d"]), config)

    def figure_names(self, dataset):
        p = self.prefix(dataset)
        return [f"{p}_train_plot.png", f"{p}_learned_dist.png"]

    def run_figures(self, run):
        """The train plot, and the learned distribution over the training values."""
        from .. import data, figures

        names = self.figure_names(run.dataset)
        out = {names[0]: super().run_figures(run)[names[0]]}
        probs = run.result.get("probs")
        if probs:
            train_data, _ = data.load(run.dataset)
            out[names[1]] = figures.Figure(lambda p: figures.learned_dist(
                p, train_data, probs, self.figure_title(run.dataset, "Learned Distribution")))
        else:
            out[names[1]] = "the run has no learned distribution (not finished)"
        return out


class HistogramQ(Q1):
    key, title = "q1a", "Histogram"
    heading = "Question 1: 1D Data — (a) Fitting a Histogram"
    reference = {"1d-1": 2.562}   # the course's final test loss (nats/dim)
    students = {"1d-1": (2.537, 2.614), "1d-2": (3.656, 3.735)}   # what students reached (spec.md)
    fields = COMMON

    def build(self, d, hp):
        return Histogram(d)


class MixtureQ(Q1):
    key, title = "q1b", "Mixture of logistics"
    heading = "Question 1: 1D Data — (b) Fitting Discretized Mixture of Logistics"
    reference = {"1d-1": 2.555}
    students = {"1d-1": (2.542, 2.550), "1d-2": (3.654, 3.700)}
    fields = COMMON + (Field("components", 4, 1, 50, help="number of logistic components"),)
    architecture = ("components",)

    def check(self, hp, dataset):
        errors = super().check(hp, dataset)
        if dataset in D and hp["components"] > D[dataset]:
            errors["components"] = f"at most {D[dataset]} for this data set (one per value)"
        return errors

    def build(self, d, hp):
        return LogisticMixture(d, hp["components"])


HISTOGRAM, MIXTURE = HistogramQ(), MixtureQ()
