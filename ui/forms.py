"""The forms pages share: the hyperparameter form and Train (restored from the page's link and written back to
it, see ui.links), the run a page shows, the data-set pickers, and results kept for the session."""
from __future__ import annotations

import streamlit as st

from core import eta
from core.engine import InvalidSpec, RunSpec

from .links import _from_link, _link_warn, _opened_with, _set_link, link_param, share_for
from .starts import FINETUNE, start_picker
from .store import device, load_data, may_view, my_runs, store, submit
from .words import plain


KEPT = 8   # drawn results kept per panel and session (the last KEPT settings)


SEED_MAX = 2**31 - 1   # what a RunSpec takes


def keep(panel: str, setting: tuple, value) -> None:
    """Keep what a button drew with these settings for this session, so it stays on the page through unrelated
    clicks, and comes back when the settings are moved back (the last KEPT settings of each panel)."""
    d = st.session_state.setdefault(f"_kept:{panel}", {})
    d.pop(setting, None)
    d[setting] = value
    while len(d) > KEPT:
        d.pop(next(iter(d)))


def kept(panel: str, setting: tuple):
    """What keep() holds for these settings, or None."""
    return st.session_state.get(f"_kept:{panel}", {}).get(setting)


def _widget(f, value, key, disabled=False):
    label = f.title
    help_ = " ".join(filter(None, [f.help, f"Allowed: {f.bounds_text()}." if f.bounds_text() else ""])) or None
    if f.kind == "choice":
        return st.selectbox(label, f.choices, index=list(f.choices).index(value) if value in f.choices else 0,
                            key=key, help=help_, disabled=disabled)
    if f.kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help_, disabled=disabled)
    if f.kind == "int":
        return st.number_input(label, value=int(value), step=1, key=key, help=help_, disabled=disabled)
    if f.kind == "float":
        return st.number_input(label, value=float(value), format="%g", key=key, help=help_, disabled=disabled)
    return st.text_input(label, value=str(value), key=key, help=help_, disabled=disabled)


def with_choices(q, name: str, values):
    """A copy of the question whose field `name` is a choice among `values` (a select box), e.g. the tokenizers
    that exist."""
    import copy
    import dataclasses

    qc = copy.copy(q)
    qc.fields = tuple(dataclasses.replace(f, choices=tuple(values)) if f.name == name else f for f in q.fields)
    return qc


def quick_time(question: str, dataset: str | None = None, short: bool = False) -> str:
    """What a quick run of this question takes, measured (core.eta.QUICK_SECONDS), and (unless short) that a busy
    machine is slower and that a running run estimates its own time left as it trains (core.eta.phase)."""
    measured = eta.quick_time(question, dataset)
    if short:
        return measured or "a few minutes"
    return (f"{measured}, {eta.BUSY}" if measured else "not measured here yet") + \
        "; a running run says what it is doing and its time left as it trains"


def train_panel(q, dataset: str, key: str | None = None, columns: int = 2, extra_spec: dict | None = None) -> str | None:
    """Preset picker + one widget per field (bounds in the help) + seed + Train, restored from the page's link and
    written back to it (see "links" above).

    Out-of-range values get a message under their widget and nothing is launched. Returns the new run id.
    """
    key = key or f"{q.key}:{dataset}"
    p = f"{q.key}."
    dev = device()
    start = start_picker(q, dataset, key)   # (source, its hparams) for a fine-tune, None from scratch
    presets = [FINETUNE] if start else list(q.presets)
    link_preset = link_param(p + "preset")
    preset_index = 0 if start else presets.index(q.default_preset(dev))
    if link_preset is not None:
        if link_preset in presets:
            preset_index = presets.index(link_preset)
        elif link_preset not in (*q.presets, FINETUNE):   # the other kind of start's preset: not an error
            _link_warn("preset", f"must be one of {', '.join(presets)}")
    restored = _opened_with(p)
    if restored:
        st.info(f"Settings restored from the link ({', '.join(n[len(p):] for n in restored)}).", icon="🔗")
    preset = st.radio("Preset", presets, index=preset_index, horizontal=True, disabled=bool(start),
                      key=f"{key}:preset:{start[0]}" if start else f"{key}:preset",
                      help="fine-tune = the trained model's sizes (fixed: they must match its weights), a low "
                           "learning rate, a short run" if start else
                           "homework = the notebook's settings (meant for a GPU); quick = sized to learn visibly on a "
                           "laptop CPU in minutes: " + quick_time(q.key, dataset))
    values, slots = {}, {}
    cols = st.columns(columns)
    base = q.start_hparams(start[1]) if start else q.preset(preset)
    fixed = set(q.architecture) if start else set()   # the weights' sizes: the source's, shown, not changed
    from_link = link_preset == preset  # values in the link belong to the preset it names
    wkey = f"{key}:{preset}:{start[0]}" if start else f"{key}:{preset}"
    for i, f in enumerate(q.fields):
        value = base[f.name]
        raw = link_param(p + f.name) if from_link and f.name not in fixed else None
        if raw is not None:
            try:
                value = _from_link(f, raw)
            except ValueError as e:
                _link_warn(f.title, str(e))
        with cols[i % columns]:
            values[f.name] = _widget(f, value, key=f"{wkey}:{f.name}", disabled=f.name in fixed)
            slots[f.name] = st.empty()
    c1, c2 = st.columns([1, 3])
    seed0 = 0
    if link_param(p + "seed") is not None:   # checked against the widget's bounds before the widget sees it
        raw = link_param(p + "seed")
        if len(raw) <= 10 and raw.isascii() and raw.isdigit() and int(raw) <= SEED_MAX:
            seed0 = int(raw)
        else:
            _link_warn("seed", f"must be a whole number from 0 to {SEED_MAX}")
    seed = c1.number_input("seed", min_value=0, max_value=SEED_MAX, value=seed0, step=1, key=f"{key}:seed")
    general = c2.empty()
    _set_link(p + "preset", preset)
    for f in q.fields:
        _set_link(p + f.name, None if values[f.name] == base[f.name] else values[f.name])
    _set_link(p + "seed", int(seed) or None)
    try:   # the server's ceilings, said before Train is pressed
        for name, msg in q.check_steps({**base, **values}, dataset).items():
            slots[name].warning(msg, icon="⏱️")
    except (TypeError, ValueError, KeyError, OverflowError):
        pass   # values the validation refuses anyway, with its own message
    if st.button(f"Train {q.title}", type="primary", key=f"{key}:train", icon="▶️"):
        more = {**(extra_spec or {}), **({"init": start[0]} if start else {})}
        spec = RunSpec(question=q.key, dataset=dataset, hparams={**values, **{n: base[n] for n in fixed}},
                       seed=int(seed), device="auto", preset=preset, **more)
        try:
            run_id = submit(spec)
        except InvalidSpec as e:
            titles = {f.name: f.title for f in q.fields}
            for name, msg in e.errors.items():
                (slots.get(name) or general).error(f"{titles.get(name, name)}: {msg}", icon="⚠️")
            st.warning("Nothing was launched: " + ("the queue refused it (above)." if "queue" in e.errors else
                                                   "fix the values marked above."))
            return None
        st.session_state[f"{key}:run"] = run_id
        _set_link(p + "run", run_id)
        st.toast(f"Queued run {run_id}")
        return run_id
    return None


def current_run(q, dataset: str, key: str | None = None) -> str | None:
    """The run this page shows: the one launched from here, else the one its link names (when it is of this
    question and data set), else the newest on disk for this question and set."""
    key = key or f"{q.key}:{dataset}"
    rid = st.session_state.get(f"{key}:run")
    if rid and store().dir_exists(rid):
        return rid
    asked = link_param(f"{q.key}.run")
    if asked:
        try:
            spec = store().spec(asked)
            if (spec.question, spec.dataset) == (q.key, dataset):
                if may_view(asked, share_for(asked)):
                    return asked
                _link_warn("run", "not yours to open")
                asked = None
        except (KeyError, OSError, ValueError):
            pass
        if asked:
            _link_warn("run", f"there is no such {q.key} run on {dataset} here")
    runs = my_runs(question=q.key, dataset=dataset)
    return runs[0]["id"] if runs else None


def dataset_radio(titles: dict, key: str) -> str:
    """A data-set radio that starts from the page's link and writes its choice back to it."""
    options, index = list(titles), 0
    asked = link_param("dataset")
    if asked is not None:
        if asked in titles:
            index = options.index(asked)
        else:
            _link_warn("data set", f"this page has {', '.join(options)}")
    dataset = st.radio("Data set", options, index=index, horizontal=True, format_func=titles.get, key=key)
    _set_link("dataset", dataset)
    return dataset


def pick_dataset(titles: dict, key: str):
    """A data-set radio (in the link) and its (train, test) arrays; stops the page with the loader's message (which
    names the fetch command when real files are missing) if the set cannot be loaded."""
    dataset = dataset_radio(titles, key)
    try:
        train, test = load_data(dataset)
    except Exception as e:  # MNIST not fetched yet, or a corrupt cache file: say so and stop here
        st.error(f"Could not load {dataset}: {plain(e)}")
        st.stop()
    return dataset, train, test
