"""The question contract: what every question of the lab (Q1-Q6) provides, and the guide to adding one.

A question is a small object (one module per question, a few questions per module, e.g. q2a and q2b):

    key, title, datasets    e.g. "q2a", "PixelCNN (binary)", ("shapes", "mnist")
    fields                  the hyperparameters, each a Field with a default and bounds (the page's widgets come
                            from these, and so does validation)
    presets                 {"quick": {...}, "homework": {...}}: overrides of the field defaults; the first is the
                            default on a CPU, "homework" on a GPU
    unit                    the unit of its test loss, as the course reports it ("nats/dim", "nats/token", ...)
    reference               {data set: the course's final test loss in `unit`}; pages and reports read it here
    students                {data set: (lo, hi)}: the range students reached, where the course gives no reference

    hparams(hp, preset)     defaults <- preset <- hp, merged once, here
    architecture, finetune  the fields that shape its weights, and the fine-tune preset's overrides (None: none
                            offered); start_hparams(source's hparams) -> a run that starts from a trained model
                            (RunSpec.init): defaults <- the source's settings <- finetune, its architecture kept
    check(hp, dataset)      cross-field checks beyond the bounds -> {field: message}; the base one refuses a run
                            that needs more memory than one run may use here (an override merges it in)
    memory(hp, dataset)     core.memory's estimate of what training needs (None: it trains nothing)
    load_data(dataset, hp, ctx) -> Data: the arrays (and anything else, e.g. a tokenizer) `train` needs
    train(data, hp, *, seed, device, ctx) -> Trained(model, config, result, extras)
                            the one signature every question has; usable in-process (ctx=None: the null context),
                            as the notebook functions in core.homework do
    finish(trained, data, hp, spec, ctx) -> dict
                            the deliverables after training (final samples, metrics); returns the run's result,
                            which holds at least "test_loss"
    run(spec, ctx)          what a background worker calls: load_data -> train -> save the checkpoint -> finish.
                            The checkpoint is saved before the final samples, so a run stopped while sampling keeps
                            its model. Override only when a question does not train (the Q3c race).

`config` is what a checkpoint stores next to the weights; `core.sources.build(config)` rebuilds the model from it
(config["question"] says which kind). `ctx` is a core.context.RunContext: every method exists on every context.

What the rest of the lab asks of a question, each with a default here (so the question is the one place that
knows itself; nothing outside core/questions names a question):

    rebuild(config)         its model with fresh weights from a checkpoint's config (core.sources.build)
    owns_config(config)     claims an older config that names no question (the first tokenizers)
    test_loss(model, config, test, loaded, device, batch_size)
                            a shipped checkpoint's loss on the test set (core.evaluate.recompute);
                            splits_new_images: it may be scored on the new or the repeated test images only
    model_label             how messages name its model ("a tokenizer (q4a)"; default "a q2a model")
    quick_seconds           {data set (None: any): seconds} its quick preset took, measured (core.eta)
    heading, course_datasets, numbered_files, has_test_loss, measures, kept_file, samples_artifact
    figure_names(dataset), prefix(dataset), figure_title(dataset, what), sample_levels(dataset)
    run_figures(run) -> {file name: core.figures.Figure | why missing}
    pretrained_figures(model, config, entry, seed=, device=, extra=) -> {file name: draw(path)} | None
    checkpoint_samples(...), loss_text(item)
                            the write-up (core.report): its heading, data sets in the course's order, the files
                            and how each is drawn from a finished run or a shipped checkpoint

Adding a question: write its module here (fields, presets, unit, reference, load_data, train, finish, rebuild,
and what of the write-up differs from the defaults), add an entry to QUESTIONS in core/questions/__init__.py (its
parts, its page file, one line for the home table), and write its page under pages/ (thin: explain, pick a data
set, ui.train_panel, ui.run_monitor, its own views).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .. import memory as mem
from ..context import RunContext  # noqa: F401 (the run-context interface, part of the contract)


class InvalidHyperparameters(ValueError):
    """Raised with {field: message} for every hyperparameter that is out of range or of the wrong type."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


MAX_TEXT = 200   # a text setting's length (a model source, a tokenizer's name): longer is refused, never used


@dataclass(frozen=True)
class Field:
    name: str
    default: Any
    lo: float | None = None          # inclusive bounds for numbers
    hi: float | None = None
    choices: tuple | None = None     # allowed values for a choice
    help: str = ""
    label: str = ""
    optional: bool = False           # None allowed (e.g. no gradient clipping)

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "float"
        return "str"

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def bounds_text(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.lo is not None and self.hi is not None:
            return f"between {self.lo:g} and {self.hi:g}"
        if self.lo is not None:
            return f"at least {self.lo:g}"
        if self.hi is not None:
            return f"at most {self.hi:g}"
        return ""

    def parse(self, value):
        """Return the cleaned value or raise ValueError with a message a learner can act on."""
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if self.optional:
                return None
            raise ValueError("a value is required")
        kind = self.kind
        if kind == "choice":
            if value not in self.choices:
                raise ValueError(f"must be {self.bounds_text()}")
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError("must be true or false")
        if kind == "str":
            if not isinstance(value, (str, int, float)) or len(str(value)) > MAX_TEXT:
                raise ValueError(f"must be a text of at most {MAX_TEXT} characters")
            return str(value)
        if isinstance(value, str) and len(value) > 100:
            raise ValueError(f"must be a number ({self.bounds_text()})")
        try:
            num = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"must be a number ({self.bounds_text()})") from None
        if not math.isfinite(num):
            raise ValueError("must be a finite number")
        if kind == "int":
            if num != int(num):
                raise ValueError("must be a whole number")
            num = int(num)
        if (self.lo is not None and num < self.lo) or (self.hi is not None and num > self.hi):
            raise ValueError(f"must be {self.bounds_text()} (got {num:g})")
        return num


def transformer_fields(layers: int, epochs: tuple, batch: tuple, warmup: int, lr_min: float = 1e-5,
                       epochs_help: str = "passes over the training data",
                       batch_help: str = "sequences per minibatch") -> tuple:
    """The fields every transformer question shares (Q3-Q5): width, heads, depth, and the Adam schedule
    (peak lr, linear warm-up then cosine decay). epochs and batch are (default, max)."""
    return (
        Field("d_model", 128, 8, 1024, label="d_model", help="width of the token vectors"),
        Field("heads", 4, 1, 16, help="attention heads; must divide d_model"),
        Field("layers", layers, 1, 12, help="transformer blocks"),
        Field("epochs", epochs[0], 1, epochs[1], help=epochs_help),
        Field("batch_size", batch[0], 1, batch[1], label="batch size", help=batch_help),
        Field("lr", 1e-3, lr_min, 1.0, label="learning rate", help="peak Adam learning rate"),
        Field("warmup_steps", warmup, 0, 100000, label="warm-up steps",
              help="linear warm-up from 0, then cosine decay to 0 at the end"),
    )


def test_sample_field(examples: str = "test images", note: str = "") -> Field:
    """How many test examples a curve point scores (core.train.TrainConfig.test_sample): 0 = all of them."""
    return Field("test_sample", 0, 0, 1_000_000, label="test sample per epoch",
                 help=f"0 = all the {examples} after every epoch; N = a seeded sample of N of them before training and "
                      "after each epoch but the last, which always scores them all: the curve's points come in "
                      "seconds instead of a minute, and the final test loss is the same" + note)


@dataclass
class Data:
    """What a question trains on: the notebook's arrays, plus what some questions also need."""
    train: Any
    test: Any
    name: str = ""             # the core.data set they came from ("" for arrays handed in by the notebook)
    d: int | None = None       # Q1: the number of values
    tokenizer: Any = None      # Q4b/Q6: the VQ tokenizer (n_embeddings, quantize, decode)
    source: str = ""           # Q4b/Q6: where the tokenizer came from ("pretrained:NAME" | "run:ID")
    sha256: str | None = None  # ... and its checksum when shipped


@dataclass
class Trained:
    """What `train` returns: the model (eval mode), the config that rebuilds it, the TrainResult (losses per
    minibatch, per epoch, seconds; None when nothing was trained), and question-specific extras."""
    model: Any
    config: dict
    result: Any = None
    extras: dict = field(default_factory=dict)


def transformer_check(hp: dict) -> dict[str, str]:
    """The cross-field check every transformer question shares: the heads split d_model evenly."""
    if hp["d_model"] % hp["heads"]:
        return {"heads": f"must divide d_model ({hp['d_model']} is not a multiple of {hp['heads']})"}
    return {}


class Question:
    key: str = ""
    title: str = ""
    datasets: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()
    presets: dict[str, dict] = {}
    unit: str = "nats/dim"
    reference: dict[str, float] = {}
    students: dict[str, tuple[float, float]] = {}   # {data set: (best, worst) final test loss students reached}
    # the memory guard: the field a run too big for one worker is refused on (its batch; its width when the
    # parameters alone are too many), and what the message says to lower
    memory_fields: tuple[str, str, str] = ("batch_size", "batch_size", "batch size")
    # fields that name another model ("pretrained:NAME" | "run:ID" | a run id): a page may submit only models its
    # learner may use (ui.submit checks them against the runs they may see)
    source_fields: tuple[str, ...] = ()
    # how messages name a model of this question ("a q2a model")
    model_label: str = ""
    # timings of its quick preset, measured (core.eta): {data set (None: any): seconds}
    quick_seconds: dict = {}
    # the write-up (core.report): its heading; file names carry the data set's number (False: one data set, q5_a);
    # whether it has a test loss, and what its number is called; the saved array its samples figure shows; the
    # file a finished run keeps that makes it reportable (None: the model, core.sources.RUN_FILE)
    heading: str = ""
    numbered_files: bool = True
    has_test_loss: bool = True
    measures: str = "Final test loss"
    samples_artifact: str = "samples"
    kept_file: str | None = None
    # core.evaluate may score only the test images new to training, or only the repeated ones (Q2, Q3)
    splits_new_images: bool = False
    # starting from a trained model (RunSpec.init): the fields that shape its weights (they must be the source's),
    # and the fine-tune preset's overrides on top of the source's settings (None: no fine-tune offered)
    architecture: tuple[str, ...] = ()
    finetune: dict | None = None

    # -- presets -----------------------------------------------------------------------------------------------
    def defaults(self) -> dict:
        return {f.name: f.default for f in self.fields}

    def preset(self, name: str) -> dict:
        if name not in self.presets:
            raise KeyError(f"{self.key} has no preset {name!r} (presets: {', '.join(self.presets)})")
        return {**self.defaults(), **self.presets[name]}

    def hparams(self, hp: dict | None = None, preset: str | None = None) -> dict:
        """The field defaults, overridden by a preset (if named), overridden by hp: the one place they merge."""
        return {**(self.preset(preset) if preset else self.defaults()), **(hp or {})}

    def start_hparams(self, source_hparams: dict) -> dict:
        """The settings of a run that starts from a trained model: the field defaults, then the source's settings
        (so every architecture field matches its weights), then this question's fine-tune overrides (a low peak
        learning rate, a short warm-up, one or two epochs on a share of the data). Fields this question does not
        know are dropped; the architecture fields stay the source's whatever the overrides say."""
        known = {f.name for f in self.fields}
        source = {k: v for k, v in (source_hparams or {}).items() if k in known}
        out = {**self.defaults(), **source, **{k: v for k, v in (self.finetune or {}).items() if k in known}}
        out.update({k: source[k] for k in self.architecture if k in source})
        return out

    def default_preset(self, device: str) -> str:
        return "homework" if device == "cuda" and "homework" in self.presets else next(iter(self.presets))

    # -- validation ---------------------------------------------------------------------------------------------
    def check(self, hp: dict, dataset: str) -> dict[str, str]:
        """Cross-field checks -> {field: message}. Here: the memory guard and the ceiling on a run's minibatches;
        an override merges them in ({**super().check(hp, dataset), **its own}), so its own message wins on a field."""
        if dataset not in self.datasets:
            return {}
        return {**self.check_steps(hp, dataset), **mem.refuse(self.memory(hp, dataset), *self.memory_fields)}

    def train_examples(self, hp: dict, dataset: str) -> int:
        """Training examples one epoch passes over (for the step ceiling): the data set's, times data_fraction."""
        return mem.n_train(dataset, hp.get("data_fraction", 1.0))

    def steps(self, hp: dict, dataset: str) -> int | None:
        """Minibatches the run would take in all (None: it trains nothing by minibatches)."""
        if "epochs" not in hp or "batch_size" not in hp:
            return None
        n = self.train_examples(hp, dataset)
        return int(hp["epochs"]) * math.ceil(n / max(1, min(int(hp["batch_size"]), n)))

    def check_steps(self, hp: dict, dataset: str) -> dict[str, str]:
        from ..train import max_steps

        steps, limit = self.steps(hp, dataset), max_steps()
        if steps is None or steps <= limit:
            return {}
        return {"epochs": f"{hp['epochs']} epochs at batch size {hp['batch_size']} are {steps:,} minibatches, over "
                          f"this server's ceiling of {limit:,} per run: use fewer epochs or a larger batch"}

    def memory(self, hp: dict, dataset: str) -> "mem.Estimate | None":
        """What training needs (core.memory); None for a question that trains nothing."""
        return None

    def validate(self, hp: dict, dataset: str) -> dict:
        """Clean every field (missing ones take defaults); raise InvalidHyperparameters listing every problem."""
        errors, clean = {}, {}
        if dataset not in self.datasets:
            errors["dataset"] = f"{dataset!r} is not a data set of {self.key} (use {', '.join(self.datasets)})"
        known = {f.name for f in self.fields}
        for name in hp:
            if name not in known:
                errors[name] = "unknown hyperparameter"
        for f in self.fields:
            try:
                clean[f.name] = f.parse(hp.get(f.name, f.default))
            except ValueError as e:
                errors[f.name] = str(e)
        # cross-field checks too, at once (with defaults standing in for values that failed), so a learner sees
        # every problem in one go; a field keeps its own range message when it has one
        cross = self.check({**self.defaults(), **clean}, dataset)
        errors.update({k: v for k, v in cross.items() if k not in errors})
        if errors:
            raise InvalidHyperparameters(errors)
        return clean

    # -- the work -------------------------------------------------------------------------------------------------
    def load_data(self, dataset: str, hp: dict, ctx: RunContext) -> Data:
        from .. import data

        out = data.load(dataset)
        return Data(out[0], out[1], name=dataset)

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        raise NotImplementedError(f"{self.key} does not define train")

    def finish(self, trained: Trained, data: Data, hp: dict, spec, ctx: RunContext) -> dict:
        """The run's result after training; by default the final test loss and the training time."""
        return self.summary(trained)

    def summary(self, trained: Trained) -> dict:
        res = trained.result
        final = res.test_losses[-1]
        return {"test_loss": final, "unit": self.unit, "bits_per_dim": final / math.log(2), "seconds": res.seconds}

    def run(self, spec, ctx: RunContext) -> dict:
        hp = self.hparams(spec.hparams)
        data = self.load_data(spec.dataset, hp, ctx)
        trained = self.train(data, hp, seed=spec.seed, device=ctx.device, ctx=ctx)
        ctx.save_checkpoint(trained.model, trained.config)
        return self.finish(trained, data, hp, spec, ctx)

    # -- its checkpoints ------------------------------------------------------------------------------------------
    def rebuild(self, config: dict):
        """A model with fresh weights from a config this question's checkpoints store (core.sources.build)."""
        from ..checkpoints import CheckpointError

        raise CheckpointError(f"no model kind for question {self.key!r}")

    def owns_config(self, config: dict) -> bool:
        """Is `config`, which names no question, one of this question's (older checkpoints saved none)?"""
        return False

    def test_loss(self, model, config: dict, test, loaded: tuple, device: str, batch_size: int) -> float:
        """The checkpoint's loss on `test` (the test set, or part of it), as training reports it (core.evaluate).
        loaded: the data set's arrays as core.data.load gives them (captions too, for a captioned set)."""
        raise KeyError(f"no test-loss recipe for {self.key} checkpoints")

    # -- the write-up (core.report) -------------------------------------------------------------------------------
    @property
    def course_datasets(self) -> tuple[str, ...]:
        """The data sets the write-up reports, in the course's order (dataset 1, dataset 2)."""
        return self.datasets

    def dset_number(self, dataset: str) -> int:
        return self.course_datasets.index(dataset) + 1

    def prefix(self, dataset: str) -> str:
        """The course's file-name stem: q2a on shapes -> "q2_a_dset1"; a question of one data set: "q5_a"."""
        n, part = self.key[:2], self.key[2:] or "a"
        return f"{n}_{part}_dset{self.dset_number(dataset)}" if self.numbered_files else f"{n}_{part}"

    def figure_title(self, dataset: str, what: str) -> str:
        q = f"Q{self.key[1]}({self.key[2:] or 'a'})"
        return f"{q} Dataset {self.dset_number(dataset)} {what}" if self.numbered_files else f"{q} {what}"

    def figure_names(self, dataset: str) -> list[str]:
        """Every file the write-up needs for this question and data set: by default its train plot and samples."""
        p = self.prefix(dataset)
        return [f"{p}_train_plot.png", f"{p}_samples.png"]

    def sample_levels(self, dataset: str) -> int:
        """Values per channel of the images it draws (for the samples figure)."""
        from .. import figures

        return figures.levels(dataset)

    def run_figures(self, run) -> dict:
        """The figures of a finished run (a core.figures.RunRecord): {file name: Figure, or why it cannot be made}.
        By default its train plot and a grid of its saved `samples_artifact`. May fill run.extra."""
        import numpy as np

        from .. import figures

        names, ds, out = self.figure_names(run.dataset), run.dataset, {}
        if names[0].endswith("train_plot.png"):
            out[names[0]] = (figures.Figure(lambda p: figures.train_plot(p, run.train, run.test,
                                                                         self.figure_title(ds, "Train Plot"), run.unit))
                             if run.train and run.test else "the run recorded no losses")
        art = self.samples_artifact
        out[names[-1]] = figures.Figure(
            lambda p: figures.samples_figure(p, np.load(run.dir / f"{art}.npy"),
                                             self.figure_title(ds, "Samples"), levels=self.sample_levels(ds)),
            f"no {art} saved")
        return out

    def checkpoint_samples(self, model, config: dict, entry: dict, seed: int, device: str):
        """Images drawn from a shipped checkpoint for the samples figure (None: it cannot draw any)."""
        return None

    def pretrained_figures(self, model, config: dict, entry: dict, *, seed: int = 0, device: str = "cpu",
                           extra: dict | None = None) -> dict | None:
        """The figures a shipped checkpoint (its manifest `entry`, loaded as `model`) can give: {file name: draw(path)}
        (samples drawn here, seeded); None when it can give none. May fill `extra`."""
        from .. import figures

        ds = entry["dataset"]
        imgs = self.checkpoint_samples(model, config, entry, seed, device)
        if imgs is None:
            return None
        name = self.figure_names(ds)[-1]
        return {name: lambda p: figures.samples_figure(p, imgs, self.figure_title(ds, "Samples"),
                                                       levels=self.sample_levels(ds))}

    def loss_text(self, item) -> str | None:
        """What the write-up says for an item's number, when not its final test loss (None: the test loss)."""
        return None
