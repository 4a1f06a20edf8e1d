"""The ui package: the Streamlit pieces every page shares (the run store, the hyperparameter form, Train, the
live monitor, pickers). Pages stay thin: they explain, pick a data set, call `train_panel` and `run_monitor`, and
draw their own extras. Pages import only this package, core.questions and core.sources (plus core.data and
core.viz for what they draw); the run engine is reached only through here.
"""
from __future__ import annotations

import os
import re
import time

import streamlit as st

from core import compare, eta, viz
from core.engine import InvalidSpec, RunSpec, RunStore, default_root, stream
from core.engine.stream import EventView

from .people import (Me, auth_configured, become_instructor, me, save_identity, server_work, set_name,  # noqa: F401
                     sign_out)
from .people import start_pump, server_threads

STATE_ICON = {"queued": "⏳", "running": "🏃", "done": "✅", "cancelled": "⏹️", "failed": "❌"}


def plural(n: int, word: str) -> str:
    """"1 sample", "2 samples"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


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
    import torch

    from core import lab

    torch.set_num_threads(server_threads())   # sampling in the server leaves the training runs their cores
    return lab.store(root)


def store() -> RunStore:
    """The run store of this server (one per runs folder; `ARLAB_RUNS_DIR` moves it), with its background pump."""
    root = str(default_root())
    os.makedirs(root, exist_ok=True)   # the server's own setting, never a learner's text
    start_pump(root)
    return _store(root)


@st.cache_resource(max_entries=8, show_spinner="Loading the data set…")
def load_data(name: str):
    """core.data.load, once per server (not once per rerun of every session)."""
    from core import data

    return data.load(name)


def viewer() -> str | None:
    """The owner whose view listings take (their own runs, pinned runs, runs of no owner); None for an instructor,
    who sees everyone's. Pass it to every listing: sources.choices, finished_runs, report.choices, ..."""
    who = me()
    return None if who.instructor else who.owner


def my_runs(question: str | None = None, dataset: str | None = None) -> list[dict]:
    """The runs this learner may see: their own, the pinned ones and those of no owner (an instructor: all)."""
    return store().list(question, dataset, owner=viewer())


def may_view(run_id: str, token: str = "") -> bool:
    """May this learner open the run (its page, samples, downloads)? Owner, instructor, pinned, no owner, or a link
    with the run's share token."""
    who = me()
    return store().may_view(run_id, who.owner, who.instructor, token or "")


MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&])")


def text(s) -> str:
    """Anything a learner typed (a name, a reason), safe inside st.markdown / st.warning / st.info: every Markdown
    and HTML character escaped, so it shows as the plain text it is (no links, images or emphasis)."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(s).split()))


def board_on() -> bool:
    """Is the class board shown to learners? (An instructor's switch, kept in the runs folder.)"""
    return (store().root / ".board-on").exists()


def set_board(on: bool) -> None:
    store().root.mkdir(parents=True, exist_ok=True)
    f = store().root / ".board-on"
    f.touch() if on else f.unlink(missing_ok=True)


def can_change(run_id: str) -> bool:
    """May this learner cancel or delete the run? Its owner and instructors may."""
    try:
        return store().owns(run_id, me().owner, me().instructor)
    except KeyError:
        return False


def plain(e) -> str:
    """An error's text for a learner: no absolute paths of the server (the project and the runs folder are named
    relatively)."""
    from core import ROOT

    return str(e).replace(str(default_root()), "runs").replace(f"{ROOT}/", "").replace(str(ROOT), ".")


def submit(spec: RunSpec) -> str:
    """Queue a run for this learner (raises InvalidSpec naming every problem; nothing is written then). Every run a
    page submits is the viewer's (owner and name are set here, whatever the page passed), and every model it names
    (its question's source fields, `init`) must be one this learner may use: shipped, or a run they may see."""
    import dataclasses

    from core.questions import get
    from core.sources import run_id_of

    who = me()
    if not who.owner:
        raise InvalidSpec({"owner": "this page does not know who you are: reload it, then try again"})
    spec = dataclasses.replace(spec, owner=who.owner, owner_name=who.name)
    try:
        named = [(name, spec.hparams.get(name)) for name in get(spec.question).source_fields]
    except KeyError:
        named = []
    errors = {}
    for name, value in named + [("init", spec.init)]:
        rid = run_id_of(value)
        if rid and store().dir_exists(rid) and not may_view(rid):
            errors[name] = "that run is not yours to use (pick your own run or a shipped model)"
    if errors:
        raise InvalidSpec(errors)
    return store().submit(spec)


@st.cache_resource
def device() -> str:
    from core.device import pick_device

    return pick_device()


KEPT = 8   # drawn results kept per panel and session (the last KEPT settings)


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


# --------------------------------------------------------------------------------------------- links
# A page's settings live in its URL, so a link carries them to a class and a reload restores the page:
#   ?dataset=shapes&q2a.preset=quick&q2a.lr=0.003&q2a.seed=1&q2a.run=<run id>
# (one prefix per question, as a page may hold two panels). Only settings that differ from the preset are written.
# A bad value in a link gets the message its widget would give, and the default is used instead.
def link_param(name: str) -> str | None:
    return st.query_params.get(name)


def _set_link(name: str, value) -> None:
    if value is None:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != str(value):
        st.query_params[name] = str(value)


def _link_warn(what: str, msg: str):
    """A bad value in the page's link: said in plain words, without echoing what the link holds."""
    st.warning(text(f"The link's {what}: {msg}; the default is used instead."), icon="🔗")


def _from_link(f, raw: str):
    """A field's value from its link text (raises ValueError with the widget's message)."""
    if f.kind == "bool":
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("must be true or false")
    return f.parse(raw)


def quick_time(question: str, dataset: str | None = None, short: bool = False) -> str:
    """What a quick run of this question takes, measured (core.eta.QUICK_SECONDS), and (unless short) that a busy
    machine is slower and that a running run estimates its own time left from its first epoch."""
    measured = eta.quick_time(question, dataset)
    if short:
        return measured or "a few minutes"
    return (f"{measured}, {eta.BUSY}" if measured else "not measured here yet") + \
        "; a running run says its time left after its first epoch"


def _opened_with(prefix: str) -> list[str]:
    """The link settings (names after `prefix`) this page was opened with: read at the first render of the prefix in
    this session only, so the settings a page writes into its own URL are never taken for a link."""
    seen = st.session_state.setdefault("_link_read", [])
    if prefix in seen:
        return []
    seen.append(prefix)
    return [n for n in st.query_params if n.startswith(prefix)]


def train_panel(q, dataset: str, key: str | None = None, columns: int = 2, extra_spec: dict | None = None) -> str | None:
    """Preset picker + one widget per field (bounds in the help) + seed + Train, restored from the page's link and
    written back to it (see "links" above).

    Out-of-range values get a message under their widget and nothing is launched. Returns the new run id.
    """
    key = key or f"{q.key}:{dataset}"
    p = f"{q.key}."
    dev = device()
    presets = list(q.presets)
    link_preset, preset_index = link_param(p + "preset"), presets.index(q.default_preset(dev))
    if link_preset is not None:
        if link_preset in presets:
            preset_index = presets.index(link_preset)
        else:
            _link_warn("preset", f"must be one of {', '.join(presets)}")
    restored = _opened_with(p)
    if restored:
        st.info(f"Settings restored from the link ({', '.join(n[len(p):] for n in restored)}).", icon="🔗")
    preset = st.radio("Preset", presets, index=preset_index, horizontal=True,
                      key=f"{key}:preset", help="homework = the notebook's settings (meant for a GPU); "
                                                 "quick = sized to learn visibly on a laptop CPU in minutes: "
                                                 + quick_time(q.key, dataset))
    values, slots = {}, {}
    cols = st.columns(columns)
    base = q.preset(preset)
    from_link = link_preset == preset  # values in the link belong to the preset it names
    for i, f in enumerate(q.fields):
        start = base[f.name]
        raw = link_param(p + f.name) if from_link else None
        if raw is not None:
            try:
                start = _from_link(f, raw)
            except ValueError as e:
                _link_warn(f.title, str(e))
        with cols[i % columns]:
            values[f.name] = _widget(f, start, key=f"{key}:{preset}:{f.name}")
            slots[f.name] = st.empty()
    c1, c2 = st.columns([1, 3])
    seed0 = 0
    if link_param(p + "seed") is not None:
        try:
            seed0 = int(link_param(p + "seed"))
        except ValueError:
            _link_warn("seed", "must be a whole number")
    seed = c1.number_input("seed", value=seed0, step=1, key=f"{key}:seed")
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
        spec = RunSpec(question=q.key, dataset=dataset, hparams=values, seed=int(seed), device="auto",
                       preset=preset, **(extra_spec or {}))
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
                if may_view(asked, link_param("share")):
                    return asked
                _link_warn("run", "not yours to open")
                asked = None
        except (KeyError, OSError, ValueError):
            pass
        if asked:
            _link_warn("run", f"there is no such {q.key} run on {dataset} here")
    runs = my_runs(question=q.key, dataset=dataset)
    return runs[0]["id"] if runs else None


# --------------------------------------------------------------------------------------------- reading a run
RunView = EventView   # a run's events as pages read them (core.engine.stream: one bounded view per run, shared)


def read_run(run_id: str) -> RunView:
    """The server's one view of this run, brought up to date (every session reads the same one)."""
    return stream.shared(store(), run_id)


LIVE_POINTS = 400  # a live curve averages the minibatch losses into at most this many points (cheap to redraw)


def curve(view: RunView, unit: str = "nats/dim", title: str = "", against: dict | None = None):
    """The live curve; `against` (core.compare.guide): the course's number as a dashed line and the shipped model's
    own test curve as a faint trace, where they exist in this unit."""
    g = against or {}
    return viz.loss_curve(view.train, view.test, view.steps_per_epoch, title=title, unit=unit,
                          max_points=LIVE_POINTS, train_x=view.train_epoch, reference=g.get("reference"),
                          shipped=g.get("shipped"), shipped_name=g.get("shipped_name") or "shipped model")


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


def _final_images(view: RunView):
    """The run's final image artifact: "samples", else the first one marked final (Q6's panels, Q4a's pairs)."""
    return next((a for a in view.artifacts if a.get("kind") == "images" and a["name"] == "samples"),
                next((a for a in view.artifacts if a.get("kind") == "images" and a.get("final")), None))


def final_grid(run_id: str, scale: int = 2):
    """The run's final sample grid as an RGB array (its "samples" artifact, or the first final image artifact),
    or None when it has none yet."""
    import numpy as np

    art = _final_images(read_run(run_id))
    if art is None:
        return None
    imgs = np.load(store().dir(run_id) / art["npy"])
    return viz.image_grid(imgs, ncols=10 if len(imgs) > 9 else 3, scale=scale)


SCRUB_PLAY_SECONDS = 0.6   # how long "play" shows each epoch


def scrub(run_id: str, key: str = ""):
    """A slider (and a play button) over the run's per-epoch sample grids, with the test loss after that epoch;
    re-read on every interaction, so it follows a run that is still going."""
    view = read_run(run_id)
    prefixes = compare.frame_prefixes(view.artifacts)
    if not prefixes:
        return
    import numpy as np

    with st.expander("⏪ Look back through training: the samples after every epoch", expanded=False):
        names = {p: p.removesuffix("_epoch").replace("_", " ") for p in prefixes}
        prefix = (st.radio("Which", prefixes, format_func=names.get, horizontal=True, key=f"scrub:{key}:{run_id}:p")
                  if len(prefixes) > 1 else prefixes[0])
        frames = compare.frames(view.artifacts, view.test, prefix)
        epochs = [f["epoch"] for f in frames]
        c1, c2 = st.columns([5, 1])
        if len(epochs) > 1:
            epoch = c1.select_slider("after epoch", epochs, value=epochs[-1], key=f"scrub:{key}:{run_id}:{prefix}")
        else:
            epoch = epochs[0]
            c1.caption(f"One epoch so far ({epoch}); more appear as the run goes on.")
        play = c2.button("▶ play", key=f"scrub:{key}:{run_id}:play", disabled=len(epochs) < 2)
        holder = st.empty()
        unit = (store().status(run_id).get("result") or {}).get("unit", "")

        def show(f):
            imgs = np.load(store().dir(run_id) / f["npy"])
            loss = f" · test loss {f['test_loss']:.4f} {unit}".rstrip() if f["test_loss"] is not None else ""
            with holder.container():
                st.caption(f"after epoch {f['epoch']}{loss}")
                if "captions" in f:
                    pairs_grid(imgs, f["captions"], scale=3)
                else:
                    st.image(viz.image_grid(imgs, ncols=min(10, max(3, int(np.ceil(np.sqrt(len(imgs)))))), scale=4))

        if play:
            for f in frames:
                show(f)
                time.sleep(SCRUB_PLAY_SECONDS)
        else:
            show(frames[epochs.index(epoch)])


NOTEBOOK_SNIPPET = """from core.homework import load_checkpoint
model, config = load_checkpoint("{path}")   # the downloaded file, or "run:{rid}" on this server
"""


def take_home(run_id: str, key: str = ""):
    """Downloads of a run: its curve (CSV), final samples (PNG), checkpoint (safetensors with its config), events
    (JSON lines), and a snippet that loads the checkpoint in the notebook. Files are read only when asked for."""
    d = store().dir(run_id)
    spec = store().spec(run_id)
    stem = f"{spec.question}-{spec.dataset}-{run_id}"
    with st.expander("⬇️ Take it home: curve, samples, checkpoint, events", expanded=False):
        cols = st.columns(4)
        cols[0].download_button("curve (CSV)", lambda: compare.curve_csv(compare.series(store(), run_id)),
                                file_name=f"{stem}-curve.csv", mime="text/csv", key=f"dl:{key}:{run_id}:csv")
        art = _final_images(read_run(run_id))
        png = d / (art["png"] if art else "samples.png")
        cols[1].download_button("samples (PNG)", lambda: png.read_bytes(), file_name=f"{stem}-{png.name}",
                                mime="image/png", key=f"dl:{key}:{run_id}:png", disabled=not png.exists(),
                                help=None if png.exists() else "no final samples yet")
        ckpt = d / "model.safetensors"
        cols[2].download_button("checkpoint (safetensors)", lambda: ckpt.read_bytes(), file_name=f"{stem}.safetensors",
                                mime="application/octet-stream", key=f"dl:{key}:{run_id}:ckpt",
                                disabled=not ckpt.exists(), help=None if ckpt.exists() else "no checkpoint yet")
        ev = d / "events.jsonl"
        cols[3].download_button("events (JSON lines)", lambda: ev.read_bytes(), file_name=f"{stem}-events.jsonl",
                                mime="application/jsonl", key=f"dl:{key}:{run_id}:events", disabled=not ev.exists())
        if ckpt.exists():
            st.markdown("**Use it in the notebook** (with this project on the path):")
            st.code(NOTEBOOK_SNIPPET.format(path=f"{stem}.safetensors", rid=run_id), language="python")


def next_token_panel(key: str, make_stepper, label_of, render, colors=None, max_top_k: int | None = None):
    """Generation one token at a time (core.nexttoken.Stepper), for Q3, Q5 and Q6.

    make_stepper() -> a fresh Stepper (called on "Start over", or when the page's model or prompt changed: pass a
    new `key` then); label_of(token) -> its bar label; render(stepper, chosen) draws what is written so far (and may
    mark where `chosen` goes); colors: an optional CSS colour per token for the bars. The bars are the sampler's
    own probabilities for the next token, reshaped live by the temperature and top-k; the highlighted bar is the
    token a draw picks (fixed noise per step, so moving the sliders shows how the pick would change)."""
    holder = st.session_state.setdefault("_steppers", {})
    if key not in holder:
        holder.clear()   # one stepper per session: a new key (model, prompt) replaces the old one
        holder[key] = make_stepper()
    stepper = holder[key]
    vocab = stepper.model.config.vocab_size
    c1, c2, c3 = st.columns(3)
    temperature = c1.slider("temperature", 0.0, 2.0, 1.0, 0.05, key=f"nt:{key}:temp",
                            help="divides the logits before the softmax: watch the bars sharpen or flatten")
    top_k = c2.number_input("top-k (0 = off)", 0, max_top_k or vocab, 0, 1, key=f"nt:{key}:topk",
                            help="keep only the k most likely tokens, then renormalise")
    seed = c3.number_input("seed", 0, 2**31 - 1, 0, 1, key=f"nt:{key}:seed")
    b1, b2, b3, b4 = st.columns(4)
    if b4.button("Start over", key=f"nt:{key}:reset"):
        holder[key] = stepper = make_stepper()
    chosen = None if stepper.full else stepper.choice(temperature, top_k or None, int(seed))
    go_one = b1.button("Draw the highlighted token", key=f"nt:{key}:one", disabled=stepper.full, type="primary")
    go_ten = b2.button("Draw 10", key=f"nt:{key}:ten", disabled=stepper.full)
    go_top = b3.button("Take the most likely", key=f"nt:{key}:top", disabled=stepper.full)
    if go_one or go_ten or go_top:
        for _ in range(10 if go_ten else 1):
            if stepper.full:
                break
            pick = int(stepper.logits(top_k or None).argmax()) if go_top else stepper.choice(
                temperature, top_k or None, int(seed))
            stepper.push(pick)
        chosen = None if stepper.full else stepper.choice(temperature, top_k or None, int(seed))
    left, right = st.columns([1, 2])
    with left:
        render(stepper, chosen)
    with right:
        if stepper.full:
            st.info("The sequence is complete. Start over to write another.")
        else:
            probs = stepper.probs(temperature, top_k or None).cpu().numpy()
            labels = [label_of(i) for i in range(len(probs))]
            st.plotly_chart(viz.next_token_bars(probs, labels, chosen, colors), key=f"nt:{key}:bars")
            st.caption(f"Step {stepper.step + 1}: the {min(20, int((probs > 0).sum()))} most likely next tokens. "
                       f"Highlighted: the one a draw picks — {labels[chosen]!r}, probability {probs[chosen]:.3f}.")
    return stepper


def shipped_notes(question: str, dataset: str):
    """What a learner should know about the shipped model of this question and set, as captions: trained on an
    older version of a generated set; for a set whose test images partly repeat training images (shapes), its test
    loss on all test images, on the new ones and on the repeated ones (manifest "test_split")."""
    from core import sources

    for e in sources.shipped(question, dataset):
        note = sources.data_note(e)
        if note:
            st.caption(note)
        sp = e.get("test_split")
        if sp:
            unit = e.get("unit", "")
            st.caption(f"Shipped `{e['name']}`: test loss {e['test_loss']:.4f} {unit} on all "
                       f"{sp['n_new'] + sp['n_repeated']:,} test images, **{sp['new']:.4f}** on the {sp['n_new']:,} "
                       f"that are not in the training set, {sp['repeated']:.4f} on the {sp['n_repeated']:,} that "
                       "repeat a training image exactly (remembered images are cheap; the new ones say how well it "
                       "generalises).")


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


def _try_instructor_key():
    """Each key typed is tried once (not again on every rerun while it sits in the box), then the box is emptied."""
    key = st.session_state.get("me:key") or ""
    if key:
        st.session_state["me:key"], st.session_state["me:key-said"] = "", become_instructor(key).message


def sidebar():
    """The sidebar every page shares: who you are (and a name to give), your runs and the class's, the device."""
    from core.device import describe

    who = me()
    save_identity()
    st.markdown(f"**You:** {who.name}{' · instructor' if who.instructor else ''}")
    if who.signed_in:
        st.button("Sign out", on_click=sign_out, key="me:sign-out")
    else:
        said = ""
        with st.popover("Your name" if who.name.startswith("guest ") else "Change your name", width="stretch"):
            with st.form("me:form", border=False):
                name = st.text_input("Name shown on your runs", value="" if who.name.startswith("guest ") else who.name,
                                     max_chars=40, help="Kept in this browser; your runs stay yours after a reload.")
                if st.form_submit_button("Save"):
                    try:
                        set_name(name)
                        st.rerun()
                    except ValueError as e:
                        said = f"{str(e)[:1].upper()}{str(e)[1:]}."
            if os.environ.get("ARLAB_INSTRUCTOR_KEY") and not who.instructor:
                st.text_input("Instructor key", type="password", key="me:key", on_change=_try_instructor_key)
        said = said or st.session_state.pop("me:key-said", "")
        if said:   # below the popover, which closes when the page reruns
            st.error(said)
    mine, all_ = store().queue_summary(owner=who.owner), store().queue_summary()
    st.markdown(f"**Your runs:** {mine['running']} running · {mine['queued']} waiting · {mine['done']} done")
    st.markdown(f"**Queue:** {all_['running']} running · {all_['queued']} waiting · {all_['done']} done · "
                f"{all_['failed']} failed · {all_['cancelled']} cancelled")
    health = getattr(store().launcher, "health", None)
    if health:   # a cluster launcher: say plainly whether it answers
        ok, msg = health()
        (st.caption if ok else st.warning)(("☁️ " if ok else "") + msg[:1].upper() + msg[1:] + ".")
        if store().unavailable and ok:
            st.caption(f"Last try: {store().unavailable}")
    else:
        st.caption(f"**Device:** {describe(device())} · {plural(store().max_concurrent, 'run')} at a time; runs "
                   "survive reloads.")


def queue_text(pos: dict | None) -> str:
    """"3rd of 12 waiting · starts in about 4 min" for a waiting run."""
    if not pos:
        return "starting…"
    n = pos["position"]
    nth = f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
    est = pos["estimate_s"]
    when = ("starts in under a minute" if est is not None and est < 60 else
            f"starts in about {est / 60:.0f} min (from recent runs like it)" if est is not None else
            "no estimate yet: no run like it has finished here")
    return f"⏳ {nth} of {pos['waiting']} waiting in the queue · {when}"


def run_monitor(run_id: str | None, extra=None, unit: str = "nats/dim", show_curve: bool = True, key: str = "",
                body_every: float = BODY_EVERY, compare_link: bool = True):
    """Status, cancel, the live curve and `extra(view, status)` for the question's own views; polls while active.
    compare_link: a link to the Runs page with this run picked for comparing."""
    if not run_id:
        st.info("No run yet: pick a preset and press Train.")
        return
    try:
        status = store().status(run_id)
    except KeyError:
        st.info("That run was deleted.")
        return
    active = status.get("state") in ("queued", "running")
    try:   # what the curve is held against: read once here, not on every redraw below
        spec0 = store().spec(run_id)
        against = compare.guide(spec0.question, spec0.dataset, unit)
    except KeyError:
        against = None

    @st.fragment(run_every=STATUS_EVERY if active else None)
    def _status():
        st_ = store().status(run_id)   # (the server's one pump starts queued work and notices dead workers)
        view = read_run(run_id)
        state = st_.get("state", "queued")
        head = st.columns([4, 1])
        label = f"{STATE_ICON.get(state, '')} **{state}** · run `{run_id}`"
        if state == "running" and st_.get("started"):
            label += f" · {time.time() - st_['started']:.0f} s"
        try:
            spec = store().spec(run_id)
        except KeyError:   # a corrupt spec.json: the status says why
            spec = RunSpec("?", "?")
        if spec.owner and spec.owner != me().owner:
            label += f" · {text(spec.owner_name or 'someone else')}'s run"
        head[0].markdown(label)
        if state == "queued":
            st.caption(queue_text(store().position(run_id)))
        elif state == "running" and not st_.get("began"):   # handed over, its worker has not begun yet
            on_cluster = (st_.get("handle") or {}).get("launcher") == "ray"
            st.caption("☁️ handed to the Ray cluster: waiting for a node with room" if on_cluster else
                       "starting its worker…")
        if state in ("queued", "running") and can_change(run_id):
            if head[1].button("Cancel", key=f"cancel:{key}:{run_id}"):
                store().cancel(run_id, reason=f"cancelled by {me().name}")
                st.toast("Stopping at the next check (a minibatch or a sampling step)…")
        if state in ("queued", "running"):
            if view.epochs and view.steps_per_epoch:
                done = view.steps_done / (view.epochs * view.steps_per_epoch)
                left = eta.text(eta.time_left(view.timing, time.time())) if state == "running" else ""
                st.progress(min(done, 1.0), text=f"epoch {len(view.test) - 1 if view.test else 0} of {view.epochs}"
                                                 + (f" · {left} (from the epochs so far)" if left else ""))
            elif "progress" in view.latest:
                p = view.latest["progress"]
                st.progress(min(max(p["frac"], 0.0), 1.0), text=p.get("msg", ""))
        if state == "failed":
            st.error(f"The run failed: {text(plain(st_.get('reason', 'unknown reason')))}")
        elif state == "cancelled":
            st.warning(f"Cancelled: {text(st_.get('reason', ''))} — what it recorded is kept below.")
        if active and state not in ("queued", "running"):
            st.rerun()  # the run just ended: redraw the whole page once and stop polling

    @st.fragment(run_every=body_every if active else None)
    def _body():
        st_ = store().status(run_id)
        view = read_run(run_id)
        if show_curve and (view.train or view.test):
            # a stable key: each redraw updates the one chart in place instead of mounting a new one
            st.plotly_chart(curve(view, unit, against=against), key=f"curve:{key}:{run_id}")
            if view.test:
                bits = f" ({view.test[-1] / 0.6931471805599453:.4f} bits)" if unit.startswith("nats") else ""
                st.caption(f"test loss: {view.test[-1]:.4f} {unit}{bits} after epoch {len(view.test) - 1}")
        if extra is not None:
            extra(view, st_)

    _status()
    _body()
    if compare_link:
        st.page_link("pages/runs.py", label="Compare this run with others, scrub through it, download it",
                     icon="📈", query_params={"compare": run_id, "run": run_id})
