"""Where a run starts: from scratch, from the shipped model, or from one of the learner's finished runs (a
fine-tune), and, on a finished run of one's own, "Train N more epochs" (a run that continues it)."""
from __future__ import annotations

import streamlit as st

from core import compare, sources

from .links import _link_warn, _set_link, link_param
from .store import can_change, may_view, store, submit, viewer
from .words import text

SCRATCH, SHIPPED, MINE = "scratch", "the shipped model", "one of my finished runs"
FINETUNE = "fine-tune"


def start_picker(q, dataset: str, key: str) -> tuple[str, dict] | None:
    """A "Start from" radio (scratch | the shipped model | one of my finished runs, each offered only where one
    exists) and, for a run, a select box; kept in the link as `<q>.start=shipped|run:ID`.
    Returns (source, the source's hparams) for a trained start, None for scratch."""
    p = f"{q.key}.start"
    if q.finetune is None:
        return None
    try:
        found = sources.starts(q.key, dataset, store().root, owner=viewer())
    except (OSError, KeyError, ValueError):
        found = []
    shipped = [s for s in found if s[0].startswith("pretrained:")]
    runs = [s for s in found if s[0].startswith("run:")]
    options = [SCRATCH] + ([SHIPPED] if shipped else []) + ([MINE] if runs else [])
    asked, index, run_index = link_param(p), 0, 0
    if asked is not None:
        rid = sources.run_id_of(asked) if asked.startswith("run:") else None
        ids = [s[0] for s in runs]
        if asked == "shipped" and shipped:
            index = options.index(SHIPPED)
        elif rid and f"run:{rid}" in ids:   # the viewer's own finished runs (sources.starts)
            index, run_index = options.index(MINE), ids.index(f"run:{rid}")
        elif rid and store().dir_exists(rid) and not may_view(rid):
            _link_warn("start", "that run is not yours to open")
        elif asked != "scratch":
            _link_warn("start", "there is no such model to start from here")
    if len(options) == 1:
        _set_link(p, None)
        return None
    choice = st.radio("Start from", options, index=index, horizontal=True, key=f"{key}:start",
                      help="scratch = fresh weights; a trained model = a fine-tune: its weights, its sizes (they "
                           "must match the weights), a low learning rate and a short run. The curve starts at its "
                           "test loss.")
    picked = None
    if choice == SHIPPED:
        picked = shipped[0]
    elif choice == MINE:
        labels = {s[0]: s[1] for s in runs}
        src = st.selectbox("Which run", list(labels), index=run_index, format_func=labels.get, key=f"{key}:start:run")
        picked = next(s for s in runs if s[0] == src)
    _set_link(p, None if picked is None else "shipped" if picked[0].startswith("pretrained:") else picked[0])
    return (picked[0], picked[2]) if picked else None


def keep_training(run_id: str, key: str = "") -> str | None:
    """On a finished run of one's own (its owner or an instructor): N and "Train N more epochs", which queues a run
    of the same question, data set and settings, N epochs, starting from this run's weights. Returns its id."""
    from core.questions import get

    try:
        if store().status(run_id).get("state") != "done" or not can_change(run_id):
            return None
        spec = store().spec(run_id)
        q = get(spec.question)
    except (KeyError, OSError, ValueError):
        return None
    epochs = next((f for f in q.fields if f.name == "epochs"), None)
    if epochs is None or not (store().dir(run_id) / sources.RUN_FILE).exists():
        return None
    c1, c2 = st.columns([1, 2])
    hi = int(epochs.hi or 1000)
    n = c1.number_input("more epochs", 1, hi, min(int(spec.hparams.get("epochs", 1)), hi, 5), step=1,
                        key=f"more:{key}:{run_id}")
    if c2.button(f"Train {int(n)} more epochs", key=f"more:go:{key}:{run_id}", icon="⏩",
                 help="A new run from this run's weights, same settings, this many epochs (a fresh learning-rate "
                      "schedule); the Runs page draws the two as one curve."):
        from core.engine import InvalidSpec

        try:
            new = submit(compare.continue_spec(spec, int(n), run_id))
        except InvalidSpec as e:
            st.error(text("Nothing was launched: " + "; ".join(map(str, e.errors.values()))))
            return None
        st.toast(f"Queued run {new}, continuing {run_id}")
        return new
    return None
