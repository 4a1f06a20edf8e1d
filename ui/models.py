"""The model picker every page shares: a select box over the shipped checkpoints and the finished runs a learner may
use, the picked model loaded once per server (one cache for every page), and one rule for what cannot be loaded."""
from __future__ import annotations

import streamlit as st

from core import sources

from .store import store, viewer
from .words import plain, text

# What loading a model may raise that a learner should read: the library's own CheckpointError, its SourceMissing
# (not shipped, no such run, not finished, another kind or data set; a tokenizer's TokenizerMissing) and what a
# truncated or garbled file raises (core.checkpoints reports it as a CheckpointError). Anything else is a bug.
LOAD_ERRORS = (sources.CheckpointError,)


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _loaded(source: str, identity: str, runs_root: str, device: str, questions: tuple, how: str, _then):
    """The model of `source` (sources.load: in eval mode on `device`), and what `_then` makes of it, once per server.
    `identity` is what the checkpoint is: a shipped one's sha256, a finished run's source (its id: a run's model never
    changes once it is done); `how` names `_then`."""
    model, config = sources.load(source, device, runs_root, questions=questions)
    return (model, config) if _then is None else _then(model, config, runs_root)


def model_picker(questions, dataset: str, key: str, then=None, device: str = "cpu", label: str = "Model",
                 empty: str = "", load: bool = True):
    """A select box over the models of `questions` trained on `dataset` that this learner may use — the shipped
    ones first, then the finished runs, best first (sources.choices with the viewer's filter: their own runs, pinned
    runs and runs of no owner; an instructor sees all) — and the picked one, loaded (load=False: picked only, for a
    page that hands the source on, e.g. to a run).

    then(model, config, runs_root) -> what the page uses (default: (model, config)), cached with the model.
    -> (source, loaded); None when there is no model (`empty` is then shown as st.info, when given) or the picked
    one cannot be loaded (st.error says why)."""
    questions = (questions,) if isinstance(questions, str) else tuple(questions)
    root = store().root
    labels = dict(sources.best_first(sources.choices(questions, dataset, root, viewer()), root))
    if not labels:
        if empty:
            st.info(empty)
        return None
    source = st.selectbox(label, list(labels), format_func=labels.get, key=key)
    if not load:
        return source, None
    how = f"{then.__module__}.{then.__qualname__}" if then else ""
    try:
        found = sources.resolve(source, questions, dataset, root)
        return source, _loaded(source, found.sha256 or found.source, str(root), device, questions, how, then)
    except LOAD_ERRORS as e:
        st.error(text(f"Could not load {source}: {plain(e)}"))
        return None
