"""The questions the lab teaches, by key. Modules are imported only when a question is asked for."""
from __future__ import annotations

import importlib

# key -> "module:attribute" of a Question instance
REGISTRY: dict[str, str] = {
    "q1a": "core.questions.q1:HISTOGRAM",
    "q1b": "core.questions.q1:MIXTURE",
    "q2a": "core.questions.q2:BINARY",
    "q2b": "core.questions.q2:COLOUR",
    "q3a": "core.questions.q3:BINARY",
    "q3b": "core.questions.q3:COLOUR",
    "q3c": "core.questions.q3:RACE",
    "q4a": "core.questions.q4:TOKENIZER",
    "q4b": "core.questions.q4:TOKEN_TRANSFORMER",
    "q5": "core.questions.q5:POETRY",
}


def get(key: str):
    if key not in REGISTRY:
        raise KeyError(f"unknown question {key!r} (known: {', '.join(REGISTRY)})")
    module, attr = REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), attr)


def register(key: str, target: str) -> None:
    REGISTRY[key] = target
