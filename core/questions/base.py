"""What every question module provides: hyperparameter fields with bounds, presets, validation and `run`.

A question is a small object:
    key, title, datasets       -- e.g. "q1a", "Histogram", ("1d-1", "1d-2")
    fields                     -- the hyperparameters, each a Field with default and bounds (widgets come from these)
    presets                    -- {"homework": {...}, "quick": {...}}: overrides of the field defaults
    check(hp, dataset)         -- cross-field checks beyond bounds -> {field: message}
    run(spec, ctx)             -- train/evaluate/sample, emitting events through ctx; returns a summary dict
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class InvalidHyperparameters(ValueError):
    """Raised with {field: message} for every hyperparameter that is out of range or of the wrong type."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


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
            return str(value)
        try:
            num = float(value)
        except (TypeError, ValueError):
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


class Question:
    key: str = ""
    title: str = ""
    datasets: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()
    presets: dict[str, dict] = {}
    unit: str = "nats/dim"

    # -- presets -----------------------------------------------------------------------------------------------
    def defaults(self) -> dict:
        return {f.name: f.default for f in self.fields}

    def preset(self, name: str) -> dict:
        if name not in self.presets:
            raise KeyError(f"{self.key} has no preset {name!r} (presets: {', '.join(self.presets)})")
        return {**self.defaults(), **self.presets[name]}

    def default_preset(self, device: str) -> str:
        return "homework" if device == "cuda" and "homework" in self.presets else next(iter(self.presets))

    # -- validation ---------------------------------------------------------------------------------------------
    def check(self, hp: dict, dataset: str) -> dict[str, str]:
        """Cross-field checks (override); return {field: message}."""
        return {}

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
        if not errors:
            errors.update(self.check(clean, dataset))
        if errors:
            raise InvalidHyperparameters(errors)
        return clean

    # -- the work -------------------------------------------------------------------------------------------------
    def run(self, spec, ctx) -> dict:
        raise NotImplementedError
