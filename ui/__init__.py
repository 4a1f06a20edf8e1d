"""The ui package: the Streamlit pieces every page shares (the run store, the hyperparameter form, Train, the
live monitor, pickers). Pages stay thin: they explain, pick a data set, call `train_panel` and `run_monitor`, and
draw their own extras. Pages import only this package, core.questions and core.sources (plus core.data and
core.viz for what they draw); the run engine is reached only through here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import streamlit as st

from core import viz
from core.engine import InvalidSpec, RunSpec, RunStore, default_root

STATE_ICON = {"queued": "⏳", "running": "🏃", "done": "✅", "cancelled": "⏹️", "failed": "❌"}


@st.cache_resource
def in_app():
    """Call first on every page. A link straight to a page (e.g. /q2_pixelcnn) on a server that has not run
    app.py yet makes Streamlit run that page file alone, in its old pages-folder mode: no app sidebar, and every
    file in pages/ listed as a page. Leave that mode and rerun, so app.py's navigation serves the same URL."""
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False  # what st.navigation itself sets
        st.rerun()


@st.cache_resource
def _store(root: str) -> RunStore:
    from core import lab

    return lab.store(root)


def store() -> RunStore:
    """The run store of this server (one per runs folder; `ARLAB_RUNS_DIR` moves it)."""
    return _store(str(default_root()))


def submit(spec: RunSpec) -> str:
    """Queue a run (raises InvalidSpec naming every problem; nothing is written then)."""
    return store().submit(spec)


@st.cache_resource
def device() -> str:
    from core.device import pick_device

    return pick_device()


# --------------------------------------------------------------------------------------------- the form and Train
def _widget(f, value, key):
    label = f.title
    help_ = " ".join(filter(None, [f.help, f"Allowed: {f.bounds_text()}." if f.bounds_text() else ""])) or None
    if f.kind == "choice":
        return st.selectbox(label, f.choices, index=list(f.choices).index(value) if value in f.choices else 0,
                            key=key, help=help_)
    if f.kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help_)
    if f.kind == "int":
        return st.number_input(label, value=int(value), step=1, key=key, help=help_)
    if f.kind == "float":
        return st.number_input(label, value=float(value), format="%g", key=key, help=help_)
    return st.text_input(label, value=str(value), key=key, help=help_)


def with_choices(q, name: str, values):
    """A copy of the question whose field `name` is a choice among `values` (a select box), e.g. the tokenizers
    that exist."""
    import copy
    import dataclasses

    qc = copy.copy(q)
    qc.fields = tuple(dataclasses.replace(f, choices=tuple(values)) if f.name == name else f for f in q.fields)
    return qc


def train_panel(q, dataset: str, key: str | None = None, columns: int = 2, extra_spec: dict | None = None) -> str | None:
    """Preset picker + one widget per field (bounds in the help) + seed + Train.

    Out-of-range values get a message under their widget and nothing is launched. Returns the new run id.
    """
    key = key or f"{q.key}:{dataset}"
    dev = device()
    presets = list(q.presets)
    preset = st.radio("Preset", presets, index=presets.index(q.default_preset(dev)), horizontal=True,
                      key=f"{key}:preset", help="homework = the notebook's settings (meant for a GPU); "
                                                 "quick = sized to learn visibly on a laptop CPU in minutes")
    values, slots = {}, {}
    cols = st.columns(columns)
    base = q.preset(preset)
    for i, f in enumerate(q.fields):
        with cols[i % columns]:
            values[f.name] = _widget(f, base[f.name], key=f"{key}:{preset}:{f.name}")
            slots[f.name] = st.empty()
    c1, c2 = st.columns([1, 3])
    seed = c1.number_input("seed", value=0, step=1, key=f"{key}:seed")
    general = c2.empty()
    if st.button(f"Train {q.title}", type="primary", key=f"{key}:train", icon="▶️"):
        spec = RunSpec(question=q.key, dataset=dataset, hparams=values, seed=int(seed), device="auto",
                       preset=preset, **(extra_spec or {}))
        try:
            run_id = store().submit(spec)
        except InvalidSpec as e:
            titles = {f.name: f.title for f in q.fields}
            for name, msg in e.errors.items():
                (slots.get(name) or general).error(f"{titles.get(name, name)}: {msg}", icon="⚠️")
            st.warning("Nothing was launched: fix the values marked above.")
            return None
        st.session_state[f"{key}:run"] = run_id
        st.toast(f"Queued run {run_id}")
        return run_id
    return None


def current_run(q, dataset: str, key: str | None = None) -> str | None:
    """The run this page shows: the one launched from here, else the newest on disk for this question and set."""
    key = key or f"{q.key}:{dataset}"
    rid = st.session_state.get(f"{key}:run")
    if rid and (store().root / rid).exists():
        return rid
    runs = store().list(question=q.key, dataset=dataset)
    return runs[0]["id"] if runs else None


# --------------------------------------------------------------------------------------------- reading a run
@dataclass
class RunView:
    """Everything read so far from a run's events, updated incrementally."""
    run_id: str
    offset: int = 0
    train: list = field(default_factory=list)
    test: list = field(default_factory=list)
    steps_per_epoch: float | None = None
    epochs: int | None = None
    artifacts: list = field(default_factory=list)
    latest: dict = field(default_factory=dict)   # last event of every type
    logs: list = field(default_factory=list)

    def update(self, events):
        for ev in events:
            t = ev.get("type")
            self.latest[t] = ev
            if t == "train":
                self.train.append(ev["loss"])
            elif t == "test":
                self.test.append(ev["loss"])
            elif t == "start":
                self.steps_per_epoch, self.epochs = ev["steps_per_epoch"], ev["epochs"]
            elif t == "artifact":
                self.artifacts.append(ev)
            elif t == "log":
                self.logs.append(ev["msg"])

    def artifact(self, name_prefix: str = "", kind: str | None = None):
        """The newest artifact whose name starts with `name_prefix`."""
        for ev in reversed(self.artifacts):
            if ev["name"].startswith(name_prefix) and (kind is None or ev["kind"] == kind):
                return ev
        return None


def read_run(run_id: str) -> RunView:
    views = st.session_state.setdefault("_run_views", {})
    view = views.get(run_id) or RunView(run_id)
    events, view.offset = store().events(run_id, view.offset)
    view.update(events)
    views[run_id] = view
    return view


LIVE_POINTS = 400  # a live curve averages the minibatch losses into at most this many points (cheap to redraw)


def curve(view: RunView, unit: str = "nats/dim", title: str = ""):
    return viz.loss_curve(view.train, view.test, view.steps_per_epoch, title=title, unit=unit,
                          max_points=LIVE_POINTS)


def pick_dataset(titles: dict, key: str):
    """A data-set radio and its (train, test) arrays; stops the page with the loader's message (which names
    the fetch command when real files are missing) if the set cannot be loaded."""
    from core import data

    dataset = st.radio("Data set", list(titles), horizontal=True, format_func=titles.get, key=key)
    try:
        train, test = data.load(dataset)
    except Exception as e:  # MNIST not fetched yet, or a corrupt cache file: say so and stop here
        st.error(f"Could not load {dataset}: {e}")
        st.stop()
    return dataset, train, test


def run_samples(view: RunView, status: dict, art: dict | None, grid, note: str = ""):
    """A run's newest sample grid — its final samples (artifact "samples") or the latest per-epoch ones — drawn by
    grid(images, final) from the saved .npy; while it runs and has none yet, a hint that they are coming."""
    if art:
        import numpy as np

        final = art["name"] == "samples" or bool(art.get("final"))
        imgs = np.load(store().dir(view.run_id) / art["npy"])
        what = f"{len(imgs)} final samples" if final else f"samples after epoch {art.get('epoch')}"
        st.image(grid(imgs, final), caption=what + note)
    elif status.get("state") in ("queued", "running"):
        st.caption("Samples appear here after every epoch.")


def pairs_grid(images, captions, marks=None, ncols: int = 3, scale: int = 5):
    """Images with their captions under them, `ncols` a row (Q6's 3x3 panels); marks: an optional ✓/✗ per pair."""
    rgb = viz.to_rgb(images, 4)
    for start in range(0, len(rgb), ncols):
        cols = st.columns(ncols)
        for j, col in enumerate(cols):
            i = start + j
            if i < len(rgb):
                mark = f"{marks[i]} " if marks is not None else ""
                col.image(rgb[i].repeat(scale, 0).repeat(scale, 1), caption=f"{mark}{captions[i]}")


def result_metrics(res: dict, ref: float | None, second: tuple[str, str], unit: str = "nats/dim"):
    """The finished run's headline: final test loss (with its distance to the course's reference), one more
    number of the question's choosing (label, text), and the training time."""
    c1, c2, c3 = st.columns(3)
    c1.metric("final test loss", f"{res['test_loss']:.4f} {unit}",
              f"{res['test_loss'] - ref:+.4f} vs reference {ref}" if ref else None, delta_color="inverse")
    c2.metric(*second)
    c3.metric("training time", f"{res['seconds']:.0f} s")


# --------------------------------------------------------------------------------------------- the live monitor
# While a run is active, its status line and progress bar redraw every STATUS_EVERY seconds, the curve, samples and
# the question's extras every BODY_EVERY seconds. Every redraw costs the browser CPU (measured on the Q2 page in
# headless Chromium: ~0.15 s per status redraw, ~0.5 s per curve + samples redraw), and on a 2-core machine that
# comes out of the training shown: redrawing everything every second took ~22% of a core and slowed a watched Q3
# run 1.21x; these intervals take ~12% (bench/app_overhead.py, bench/RESULTS.md).
STATUS_EVERY, BODY_EVERY = 2.0, 10.0


def run_monitor(run_id: str | None, extra=None, unit: str = "nats/dim", show_curve: bool = True, key: str = "",
                body_every: float = BODY_EVERY):
    """Status, cancel, the live curve and `extra(view, status)` for the question's own views; polls while active."""
    if not run_id:
        st.info("No run yet: pick a preset and press Train.")
        return
    try:
        status = store().status(run_id)
    except KeyError:
        st.info("That run was deleted.")
        return
    active = status.get("state") in ("queued", "running")

    @st.fragment(run_every=STATUS_EVERY if active else None)
    def _status():
        store().pump()  # start queued work, notice dead workers
        st_ = store().status(run_id)
        view = read_run(run_id)
        state = st_.get("state", "queued")
        head = st.columns([4, 1])
        label = f"{STATE_ICON.get(state, '')} **{state}** · run `{run_id}`"
        if state == "running" and st_.get("started"):
            label += f" · {time.time() - st_['started']:.0f} s"
        head[0].markdown(label)
        if state in ("queued", "running"):
            if head[1].button("Cancel", key=f"cancel:{key}:{run_id}"):
                store().cancel(run_id)
                st.toast("Stopping at the next minibatch…")
            if view.epochs and view.steps_per_epoch:
                done = len(view.train) / (view.epochs * view.steps_per_epoch)
                st.progress(min(done, 1.0), text=f"epoch {len(view.test) - 1 if view.test else 0} of {view.epochs}")
            elif "progress" in view.latest:
                p = view.latest["progress"]
                st.progress(min(max(p["frac"], 0.0), 1.0), text=p.get("msg", ""))
        if state == "failed":
            st.error(f"The run failed: {st_.get('reason', 'unknown reason')}")
        elif state == "cancelled":
            st.warning(f"Cancelled: {st_.get('reason', '')} — what it recorded is kept below.")
        if active and state not in ("queued", "running"):
            st.rerun()  # the run just ended: redraw the whole page once and stop polling

    @st.fragment(run_every=body_every if active else None)
    def _body():
        st_ = store().status(run_id)
        view = read_run(run_id)
        if show_curve and (view.train or view.test):
            # a stable key: each redraw updates the one chart in place instead of mounting a new one
            st.plotly_chart(curve(view, unit), key=f"curve:{key}:{run_id}")
            if view.test:
                bits = f" ({view.test[-1] / 0.6931471805599453:.4f} bits)" if unit.startswith("nats") else ""
                st.caption(f"test loss: {view.test[-1]:.4f} {unit}{bits} after epoch {len(view.test) - 1}")
        if extra is not None:
            extra(view, st_)

    _status()
    _body()
