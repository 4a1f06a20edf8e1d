"""Reading a run and the live monitor: its status line, Cancel, the live curve, its samples, its place in the
queue."""
from __future__ import annotations

import time

import streamlit as st

from core import compare, eta, viz
from core.engine import RunSpec, stream
from core.engine.stream import EventView

from .identity import me
from .starts import keep_training
from .store import can_change, may_view, store
from .words import plain, text

STATE_ICON = {"queued": "⏳", "running": "🏃", "done": "✅", "cancelled": "⏹️", "failed": "❌"}


RunView = EventView   # a run's events as pages read them (core.engine.stream: one bounded view per run, shared)


def read_run(run_id: str) -> RunView:
    """The server's one view of this run, brought up to date (every session reads the same one)."""
    return stream.shared(store(), run_id)


LIVE_POINTS = 400  # a live curve averages the minibatch losses into at most this many points (cheap to redraw)


def curve(view: RunView, unit: str = "nats/dim", title: str = "", against: dict | None = None, chain=()):
    """The live curve; `against` (core.compare.guide): the course's number as a dashed line and the shipped model's
    own test curve as a faint trace, where they exist in this unit. chain: the runs this one continues (oldest
    first, core.compare.chain): drawn before it as one curve, each restart a dotted vertical line."""
    g = against or {}
    restarts = []
    if len(chain) > 1:
        view, restarts = compare.join([compare.series(store(), rid) for rid in chain])
    return viz.loss_curve(view.train, view.test, view.steps_per_epoch, title=title, unit=unit,
                          max_points=LIVE_POINTS, train_x=view.train_epoch, reference=g.get("reference"),
                          shipped=g.get("shipped"), shipped_name=g.get("shipped_name") or "shipped model",
                          restarts=restarts, test_sample=getattr(view, "test_sample", None))


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


# --------------------------------------------------------------------------------------------- the live monitor
# While a run is active, its status line and progress bar redraw every STATUS_EVERY seconds, the curve, samples and
# the question's extras every BODY_EVERY seconds. Every redraw costs the browser CPU (measured on the Q2 page in
# headless Chromium: ~0.15 s per status redraw, ~0.5 s per curve + samples redraw), and on a 2-core machine that
# comes out of the training shown: redrawing everything every second took ~22% of a core and slowed a watched Q3
# run 1.21x; these intervals take ~12% (python -m bench.system.app_overhead, bench/RESULTS.md).
STATUS_EVERY, BODY_EVERY = 2.0, 10.0


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


def _show_on_page(new: str) -> None:
    """A run just queued from a question page's monitor: that page shows it (its panel's run, in the link)."""
    from .links import _set_link

    spec = store().spec(new)
    st.session_state[f"{spec.question}:{spec.dataset}:run"] = new
    _set_link(f"{spec.question}.run", new)
    st.rerun()


def run_monitor(run_id: str | None, extra=None, unit: str = "nats/dim", show_curve: bool = True, key: str = "",
                body_every: float = BODY_EVERY, compare_link: bool = True, on_continue=None):
    """Status, cancel, the live curve and `extra(view, status)` for the question's own views; polls while active.
    compare_link: a link to the Runs page with this run picked for comparing. A run that continues others is drawn
    with them as one curve; a finished run of one's own offers "Train N more epochs" (on_continue(new id): what
    the page then shows; by default the new run on its question's page)."""
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
    lineage = compare.chain(store(), run_id, may_view)   # the runs it continues, oldest first (itself last)

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
            now = eta.phase(view.timing, time.time(), clock=state == "running")   # the epoch, or the final work
            if now is not None:
                st.progress(now.frac, text=now.text)
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
            st.plotly_chart(curve(view, unit, against=against, chain=lineage), key=f"curve:{key}:{run_id}")
            if len(lineage) > 1:
                st.caption(f"Continues {', then '.join(lineage[:-1])}: one curve, each restart dotted.")
            if view.test:
                bits = f" ({view.test[-1] / 0.6931471805599453:.4f} bits)" if unit.startswith("nats") else ""
                st.caption(f"test loss: {view.test[-1]:.4f} {unit}{bits} after epoch {len(view.test) - 1}")
        if extra is not None:
            extra(view, st_)

    _status()
    _body()
    if status.get("state") == "done":
        new = keep_training(run_id, key)
        if new:
            (on_continue or _show_on_page)(new)
    if compare_link:
        st.page_link("pages/runs.py", label="Compare this run with others, scrub through it, download it",
                     icon="📈", query_params={"compare": run_id, "run": run_id})
