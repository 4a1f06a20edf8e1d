"""What pages draw from a run or a model: sample grids, the look back through training, the downloads, the
next-token panel, the shipped model's notes, a finished run's headline."""
from __future__ import annotations

import time

import streamlit as st

from core import compare, viz

from .monitor import RunView, read_run
from .store import store


def pairs_grid(images, captions, marks=None, ncols: int = 3, scale: int = 5):
    """Images with their captions under them, `ncols` a row (Q6's 3x3 panels); marks: an optional ✓/✗ per pair.
    Every tile is drawn at one width, its pixels' (scale x the image's width): a caption wraps under its image and
    never widens it."""
    rgb = viz.to_rgb(images, 4)
    for start in range(0, len(rgb), ncols):
        cols = st.columns(ncols)
        for j, col in enumerate(cols):
            i = start + j
            if i < len(rgb):
                mark = f"{marks[i]} " if marks is not None else ""
                tile = rgb[i].repeat(scale, 0).repeat(scale, 1)
                col.image(tile, caption=f"{mark}{captions[i]}", width=int(tile.shape[1]))


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
    re-read on every interaction, so it follows a run that is still going. A continued run's epochs are numbered
    as its curve numbers them, on from the runs it continues ("epoch 5 (this run's 2nd)")."""
    view = read_run(run_id)
    prefixes = compare.frame_prefixes(view.artifacts)
    if not prefixes:
        return
    import numpy as np

    from .store import may_view

    offset = compare.epoch_offset(store(), run_id, may_view)   # a continued run: epochs count on, as on its curve
    going = store().status(run_id).get("state") in ("queued", "running")

    with st.expander("⏪ Look back through training: the samples after every epoch", expanded=False):
        names = {p: p.removesuffix("_epoch").replace("_", " ") for p in prefixes}
        prefix = (st.radio("Which", prefixes, format_func=names.get, horizontal=True, key=f"scrub:{key}:{run_id}:p")
                  if len(prefixes) > 1 else prefixes[0])
        frames = compare.frames(view.artifacts, view.test, prefix)
        epochs = [f["epoch"] for f in frames]
        c1, c2 = st.columns([5, 1])
        if len(epochs) > 1:
            epoch = c1.select_slider("after epoch", epochs, value=epochs[-1], key=f"scrub:{key}:{run_id}:{prefix}",
                                     format_func=lambda e: str(e + offset),
                                     help=f"Counted as on the curve: this run continues runs that trained {offset} "
                                          "epochs before it." if offset else None)
        else:
            epoch, which = epochs[0], compare.epoch_label(epochs[0], offset)
            c1.caption(f"Samples after one epoch so far ({which}); more appear as the run goes on." if going else
                       f"This run kept samples after one epoch ({which}).")
        play = c2.button("▶ play", key=f"scrub:{key}:{run_id}:play", disabled=len(epochs) < 2)
        holder = st.empty()
        unit = (store().status(run_id).get("result") or {}).get("unit", "")

        def show(f):
            imgs = np.load(store().dir(run_id) / f["npy"])
            loss = f" · test loss {f['test_loss']:.4f} {unit}".rstrip() if f["test_loss"] is not None else ""
            with holder.container():
                st.caption(f"after {compare.epoch_label(f['epoch'], offset)}{loss}")
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
        cols[0].download_button("curve (CSV)", lambda: compare.curve_csv(compare.recorded(store(), run_id)),
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
