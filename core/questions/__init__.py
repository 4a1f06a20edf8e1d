"""The questions the lab teaches: ONE list, from which the registry (key -> question), the app's navigation and
the home table are all derived; the run engine, core.sources, core.evaluate and core.report find a question's
model, test loss, figures and write-up heading on the question itself. Adding a question touches its module, its
page, and QUESTIONS below.

Modules are imported only when a question is asked for (`get`), so reading the list is cheap.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .base import InvalidHyperparameters


@dataclass(frozen=True)
class Entry:
    key: str                      # "q2"
    title: str                    # as the navigation and the home table show it
    icon: str
    page: str                     # its page, under pages/
    what: str                     # one line for the home table
    parts: dict = field(default_factory=dict)   # question key -> "module:attribute" of its Question instance
    reference_text: str = ""      # for the home table when its parts carry no reference (students' ranges)


QUESTIONS = (
    Entry("q1", "Q1 · 1-D data", "📊", "q1_1d.py",
          "fit a histogram and a discretized mixture of logistics to one discrete variable",
          {"q1a": "core.questions.q1:HISTOGRAM", "q1b": "core.questions.q1:MIXTURE"}),
    Entry("q2", "Q2 · PixelCNN", "🧱", "q2_pixelcnn.py",
          "masked convolutions on binary and colour images; see the mask and the blind spot",
          {"q2a": "core.questions.q2:BINARY", "q2b": "core.questions.q2:COLOUR"}),
    Entry("q3", "Q3 · iGPT + KV cache", "⚡", "q3_transformer.py",
          "a transformer on pixels; race sampling with and without a key/value cache",
          {"q3a": "core.questions.q3:BINARY", "q3b": "core.questions.q3:COLOUR", "q3c": "core.questions.q3:RACE"}),
    Entry("q4", "Q4 · VQ tokens", "🧩", "q4_vq.py",
          "tokenize images with a VQ-VAE, tweak its codebook, model the tokens",
          {"q4a": "core.questions.q4:TOKENIZER", "q4b": "core.questions.q4:TOKEN_TRANSFORMER"}),
    Entry("q5", "Q5 · Poetry", "✒️", "q5_poetry.py", "a character-level transformer that writes verse",
          {"q5": "core.questions.q5:POETRY"}),
    Entry("q6", "Q6 · Text + image", "🖼️", "q6_multimodal.py", "one transformer over caption words and image tokens",
          {"q6": "core.questions.q6:MULTIMODAL"}),
)

REGISTRY: dict[str, str] = {k: target for e in QUESTIONS for k, target in e.parts.items()}

# kinds of shipped model that are no question of their own (nothing trains them from a page): a measuring
# instrument a question uses. They rebuild and score their checkpoints as questions do (kind, below).
INSTRUMENTS: dict[str, str] = {"digits": "core.questions.q6.agreement:DIGIT_READER"}


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def get(key: str):
    if key not in REGISTRY:
        raise KeyError(f"unknown question {key!r} (known: {', '.join(REGISTRY)})")
    return _load(REGISTRY[key])


def register(key: str, target: str) -> None:
    REGISTRY[key] = target


def kind(key: str):
    """What a checkpoint of kind `key` (its config's "question") belongs to: a question, or an instrument."""
    if key in REGISTRY:
        return get(key)
    if key in INSTRUMENTS:
        return _load(INSTRUMENTS[key])
    raise KeyError(f"no model kind {key!r}")


def kinds() -> list[str]:
    """Every kind of checkpoint: the questions, then the instruments."""
    return [*REGISTRY, *(k for k in INSTRUMENTS if k not in REGISTRY)]


def model_label(key: str) -> str:
    """How messages name a model of kind `key`: "a tokenizer (q4a)", "a q2a model"."""
    try:
        return kind(key).model_label or f"a {key} model"
    except KeyError:
        return f"a {key} model"


def validate(question: str, dataset: str, hparams: dict) -> dict:
    """The run engine's validator: cleaned hyperparameters, or InvalidHyperparameters naming every problem."""
    try:
        q = get(question)
    except KeyError as e:
        raise InvalidHyperparameters({"question": str(e.args[0])}) from None
    return q.validate(hparams, dataset)


def reference_text(entry: Entry) -> str:
    """The home table's reference column: the course's numbers on data set 1 of each part, or the students' range."""
    refs = []
    for key in entry.parts:
        q = get(key)
        if q.reference:
            v = q.reference.get(q.datasets[0], next(iter(q.reference.values())))
            refs.append(f"{v:.4f}" if v < 1 else f"{v:.3f}")
        elif q.students:
            lo, hi = next(iter(q.students.values()))
            refs.append(f"{lo:.2f}–{hi:.2f} (students)")
    return " / ".join(refs) or entry.reference_text
