"""The lab wired together: the run engine with the question registry as its validator.

    from core.lab import store
    run_id = store().submit(RunSpec("q1a", "1d-1", {"epochs": 3}))

The engine knows no question (core/engine); the questions know no engine (core/questions); this is where the two
meet, for the ui package, the command-line tools, benchmarks and tests.
"""
from __future__ import annotations

from . import questions
from .engine import InvalidSpec, RunSpec, RunStore  # noqa: F401 (re-exported for callers of store())


def store(root=None, max_concurrent: int | None = None, launcher=None, policy=None) -> RunStore:
    """A RunStore over `root` (default: $ARLAB_RUNS_DIR or runs/) that validates with the question registry."""
    return RunStore(root, max_concurrent=max_concurrent, launcher=launcher, validator=questions.validate, policy=policy)
