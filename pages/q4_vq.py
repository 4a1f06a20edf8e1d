"""Q4 — VQ tokens: train a VQ-VAE tokenizer, play with its codebook, and model the token grids with a transformer."""
import math
import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import checkpoints, data, viz
from core.questions import get
from core.questions import q4
import ui

ui.in_app()

REFERENCE = get("q4b").reference["mnist-colored"]  # the course's q4b test loss on its coloured MNIST (nats/token)

st.title("🧩 Q4 · VQ tokens")
st.markdown(
    "A transformer over 784 pixels is slow and spends its capacity on pixel noise. A **VQ-VAE tokenizer** "
    "first squeezes each 28×28×3 image into a **7×7 grid of codebook indices**: a conv encoder maps the image to "
    "49 vectors, each is replaced by the nearest of K code vectors (its index is the token), and a decoder "
    "rebuilds the image from the codes. Then a transformer models just **49 tokens** per image (plus <bos>), "
    "and its samples are decoded back to images.\n"
    "- **(a) Tokenizer** — train one; its loss is a squared error in the 0..3 pixel scale, *not* nats.\n"
    "- **Codebook lab** — shrink, switch off and shake the codebook and watch what it costs. "
    f"{q4.bits_text(REFERENCE)}\n"
    "- **(b) Token transformer** — the Q3 transformer on the token grids; loss in nats per token "
    f"(≈ ln 1025 ≈ 6.93 before training; the course reached {REFERENCE} on its coloured MNIST).")

TITLES = data.titles("mnist-colored", "mnist-v2")
dataset = ui.dataset_radio({"mnist-colored": f"{TITLES['mnist-colored']} — textured backgrounds",
                            "mnist-v2": f"{TITLES['mnist-v2']} — solid colours"}, key="q4:dataset")
tab_a, tab_lab, tab_b = st.tabs(["(a) Tokenizer", "🔬 Codebook lab", "(b) Token transformer"])


def _grid(run_id: str, ev: dict, scale: int = 3):
    """An image artifact of a run, drawn crisply from its .npy (the PNG is 1 pixel per pixel)."""
    return viz.image_grid(np.load(ui.store().dir(run_id) / ev["npy"]), ncols=10, levels=4, scale=scale)


def _no_tokenizer_note():
    st.info(f"No tokenizer for {dataset} yet: none is shipped and no tokenizer run has finished. Train one on the "
            f"**(a) Tokenizer** tab first (the quick preset takes {ui.quick_time('q4a', dataset, short=True)}).",
            icon="👈")


# --------------------------------------------------------------------------------------------- (a) the tokenizer
def _vq_series(run_id: str) -> dict:
    """The run's per-minibatch "vq" and per-epoch "vq_test" events, read incrementally."""
    view = ui.read_run(run_id)   # the server's one bounded view of the run
    vq = view.of("vq")
    return {"step": [ev["step"] for ev in vq], **{k: [ev[k] for ev in vq] for k in ("recon", "usage", "perplexity")},
            "test": list(view.of("vq_test"))}


def _codebook_fig(s: dict, steps_per_epoch, k: int | None):
    fig = go.Figure()
    spe = steps_per_epoch or max(len(s["usage"]), 1)
    for name, ys, color in (("codes used in a minibatch", s["usage"], viz.PALETTE[0]),
                            ("perplexity of a minibatch", s["perplexity"], viz.PALETTE[2])):
        if ys:
            x, y = viz.downsample(np.asarray(s["step"], float) / spe, ys)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=color, width=1.5)))
    if s["test"]:
        fig.add_trace(go.Scatter(x=[t["epoch"] for t in s["test"]], y=[t["usage"] for t in s["test"]],
                                 mode="lines+markers", name="codes used on the test set",
                                 line=dict(color=viz.TEST_COLOR, width=2.5)))
    if k:
        fig.add_hline(y=k, line_dash="dot", annotation_text=f"K = {k}")
    fig.update_layout(title="codebook usage", xaxis_title="epoch", yaxis_title="codes", height=360,
                      margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def _tokenizer_extra(view, status):
    s = _vq_series(view.run_id)
    k = ui.store().spec(view.run_id).hparams.get("n_embeddings")
    c1, c2 = st.columns(2)
    if view.train or view.test:
        c1.plotly_chart(viz.loss_curve(view.train, view.test, view.steps_per_epoch, unit="MSE + VQ", train_x=view.train_epoch,
                                       title="loss = reconstruction MSE + VQ loss (not nats)"),
                        key=f"q4a:loss:{view.run_id}")
    if s["recon"] or s["test"]:
        c2.plotly_chart(viz.loss_curve(s["recon"], [t["recon"] for t in s["test"]], view.steps_per_epoch,
                                       train_x=np.asarray(s["step"], float) / (view.steps_per_epoch or 1),
                                       unit="MSE, 0..3 scale", title="reconstruction error"),
                        key=f"q4a:recon:{view.run_id}")
        c1.plotly_chart(_codebook_fig(s, view.steps_per_epoch, k), key=f"q4a:usage:{view.run_id}")
    ev = view.artifact("recon")
    if ev:
        what = "50 test images" if ev.get("final") else f"after epoch {ev['epoch']}"
        c2.image(_grid(view.run_id, ev, 2), caption=f"rows of originals, each followed by its reconstruction — {what}")
    if s["test"]:
        t = s["test"][-1]
        m = st.columns(4)
        m[0].metric("test reconstruction MSE", f"{t['recon']:.4f}", help="mean squared error in the 0..3 pixel "
                    "scale over the whole test set; for the tokenizer this is the 'test loss' (not nats)")
        m[1].metric("wrong pixel channels", f"{100 * t['wrong']:.1f} %", help="after rounding to 0..3")
        m[2].metric("codes used on the test set", f"{t['usage']} / {k}")
        m[3].metric("perplexity (test)", f"{t['perplexity']:.0f}", help="exp(entropy) of the code histogram: "
                    "how many codes the tokens are effectively spread over")


with tab_a:
    st.markdown("Train a tokenizer for this data set in the background. **homework** = the original's shape "
                "(128/256 channels, 1024 codes × 64 dims), meant for a GPU; **quick** = a small one that learns "
                f"on a laptop CPU in {ui.quick_time('q4a', dataset, short=True)}. Try a tiny codebook (K = 16) and "
                "see the reconstructions suffer, or switch EMA off to learn the codes with the codebook loss as the "
                "original did.")
    qa = get("q4a")
    ui.train_panel(qa, dataset)
    ui.run_monitor(ui.current_run(qa, dataset), extra=_tokenizer_extra, unit="mse", show_curve=False, key="q4a")


# --------------------------------------------------------------------------------------------- the codebook lab
@st.cache_resource(max_entries=2)
def _images(name: str):
    out = data.load(name)
    return out[0][:500].copy(), out[1]


@st.cache_resource(max_entries=4)
def _lab_base(source: str, name: str, stamp: float):
    """The tokenizer, and the encoder outputs of 500 training images (for usage) and 200 test images (for errors)."""
    tok = q4.load_tokenizer(source, dataset=name)
    usage_x, test = _images(name)
    eval_x = test[np.random.default_rng(0).choice(len(test), 200, replace=False)]
    return {"tok": tok, "z_usage": tok.encode(usage_x), "eval_x": eval_x, "z_eval": tok.encode(eval_x)}


@st.cache_data(max_entries=8)
def _usage(source: str, name: str, stamp: float) -> np.ndarray:
    b = _lab_base(source, name, stamp)
    return q4.lab_usage(b["tok"], b["z_usage"])


@st.cache_resource(max_entries=16)
def _edited(source, name, stamp, k, method, off, scale, seed):
    b = _lab_base(source, name, stamp)
    with ui.heavy_step():   # k-means and noise: through the server's fair gate (a cache hit never waits)
        return q4.lab_tokenizer(b["tok"], b["z_usage"], k, method, off, scale, seed)


@st.cache_data(max_entries=64)
def _error(source, name, stamp, k, method, off, scale, seed) -> dict:
    b = _lab_base(source, name, stamp)
    return q4.lab_error(_edited(source, name, stamp, k, method, off, scale, seed), b["eval_x"], b["z_eval"])


@st.cache_data(max_entries=16)
def _curve(source, name, stamp, ks, method, off, scale, seed) -> list:
    b = _lab_base(source, name, stamp)
    with ui.heavy_step():
        return q4.lab_curve(b["tok"], b["z_usage"], b["eval_x"], b["z_eval"], ks, method, off, scale, seed)


def _lab():
    opts = dict(q4.available_tokenizers(dataset, owner=ui.viewer()))
    if not opts:
        _no_tokenizer_note()
        return
    source = st.selectbox("Tokenizer", list(opts), format_func=opts.get, key=f"q4:lab:tok:{dataset}")
    try:
        stamp = os.path.getmtime(q4.find_tokenizer(source, dataset).path)
        with st.spinner("Loading the tokenizer and encoding a few hundred images…"):
            base = _lab_base(source, dataset, stamp)
    except (ValueError, checkpoints.CheckpointError) as e:
        st.error(f"Could not load that tokenizer: {ui.plain(e)}")
        return
    tok, usage = base["tok"], _usage(source, dataset, stamp)
    K = tok.n_embeddings
    ppl, freq_bits = q4.usage_bits(usage)
    st.caption(f"{K} codes; {int((usage > 0).sum())} of them are used by 500 training images, with perplexity "
               f"{ppl:.0f}: coded by those frequencies an image costs 49·log₂{ppl:.0f} ≈ {freq_bits:.0f} bits, "
               f"against {q4.fixed_bits(K):.0f} fixed-length. Errors below are measured on 200 test images; the "
               "codebook edits never change the trained tokenizer.")

    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Images**")
        seed = st.number_input("image seed", 0, 10**6, 0, key="q4:lab:seed")
        count = st.slider("how many", 1, 20, 10, key="q4:lab:count")
    with c2:
        st.markdown("**Switch codes off**")
        top = [int(c) for c in np.argsort(-usage, kind="stable")[:40] if usage[c] > 0]
        off = tuple(sorted(st.multiselect("the most-used codes", top, key=f"q4:lab:off:{source}",
                                          format_func=lambda c: f"code {c} · {usage[c]}×",
                                          help="a switched-off code is never chosen: each vector goes to its "
                                               "nearest remaining code")))
        method = st.radio("shrink by", q4.LAB_METHODS, horizontal=True, key="q4:lab:method",
                          format_func={"most_used": "keeping the K most used", "kmeans": "k-means of the codes"}.get,
                          help="most used: the other codes are switched off (indices keep their colours); "
                               "k-means: K new codes, weighted k-means over the codes in use (renumbered)")
    n_on = K - len(off)
    with c3:
        st.markdown("**Shrink and shake**")
        ks = sorted({2 ** i for i in range(int(math.log2(n_on)) + 1)} | {n_on})
        # the options change with the codes switched off, so the slider is a new widget then: start it where the
        # learner left it ("all" stays all; a K stays that K, or the largest option below it)
        last = st.session_state.get(f"q4:lab:klast:{source}", "all")
        start = n_on if last == "all" else max([o for o in ks if o <= last] or [ks[0]])
        k = st.select_slider("codebook size K", ks, value=start, key=f"q4:lab:k:{source}:{n_on}")
        st.session_state[f"q4:lab:klast:{source}"] = "all" if k == n_on else k
        scale = st.slider("perturb the codes: noise scale", 0.0, 2.0, 0.0, 0.05, key="q4:lab:scale",
                          help="Gaussian noise added to every code vector, in units of the codebook's rms entry")
        pseed = st.number_input("noise seed", 0, 10**6, 0, key="q4:lab:pseed")
    args = (source, dataset, stamp, int(k), method, off, float(scale), int(pseed))
    try:
        with st.spinner("Editing the codebook…"):
            edited, err = _edited(*args), _error(*args)
    except ValueError as e:
        st.error(str(e))
        return
    full = {"k": K, "bits": q4.fixed_bits(K), **_error(source, dataset, stamp, K, "most_used", (), 0.0, 0)}
    current = {"k": edited.n_active, "bits": q4.fixed_bits(edited.n_active), **err}

    _, test = _images(dataset)
    x = test[np.random.default_rng(int(seed)).choice(len(test), int(count), replace=False)]
    z = tok.encode(x)
    idx = edited.quantize_latents(z).cpu().numpy()
    rows = [("originals", x, 4), ("their 7×7 tokens with your codebook (one colour per code index)",
                                  q4.token_picture(idx, edited.n_embeddings), 256),
            (f"reconstructions with your codebook (K = {edited.n_active})", q4.to_images(edited.decode(idx)), 4),
            (f"reconstructions with the trained codebook (K = {K})",
             q4.to_images(tok.decode(tok.quantize_latents(z).cpu().numpy())), 4)]
    for caption, imgs, levels in rows:
        st.image(viz.image_grid(imgs, ncols=20, levels=levels, scale=3), caption=caption)

    def delta(d, fmt):  # no arrow while the codebook is the trained one
        return None if abs(d) < 1e-12 else format(d, fmt)

    m = st.columns(4)
    m[0].metric("codes in use", f"{edited.n_active} / {K}")
    m[1].metric("bits per image, fixed-length", f"{current['bits']:.0f}",
                delta(current["bits"] - full["bits"], "+.0f"), delta_color="off", delta_arrow="off",
                help="49 tokens × log₂K bits: the fixed-length code, an upper bound on what an image costs")
    m[2].metric("test MSE", f"{err['mse']:.3f}", delta(err["mse"] - full["mse"], "+.3f"), delta_color="inverse",
                help="vs the trained codebook, on 200 test images (0..3 pixel scale)")
    m[3].metric("wrong pixel channels", f"{100 * err['wrong']:.1f} %",
                delta(100 * (err["wrong"] - full["wrong"]), "+.1f"), delta_color="inverse")

    left, right = st.columns([3, 2])
    with left, st.spinner("Measuring every K (rate-distortion)…"):
        curve_ks = tuple(sorted({4 ** i for i in range(int(math.log(n_on, 4)) + 1)} | {n_on}))
        curve = _curve(source, dataset, stamp, curve_ks, method, off, float(scale), int(pseed))
        label = {"most_used": "most used", "kmeans": "k-means"}[method]
        st.plotly_chart(q4.rd_figure(curve, current, full, label), key="q4:lab:rd")
        st.caption(q4.rd_caption(K))
    with right:
        hm = go.Figure(go.Heatmap(z=idx[0][::-1], text=idx[0][::-1], texttemplate="%{text}", colorscale="Turbo",
                                  showscale=False, hovertemplate="code %{z}<extra></extra>"))
        hm.update_layout(title="the first image's 49 tokens", height=380, margin=dict(l=10, r=10, t=40, b=10),
                         xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"))
        st.plotly_chart(hm, key="q4:lab:heat")


with tab_lab:
    st.markdown("Pick a tokenizer and some test images, then change its codebook live: **shrink** it to K codes, "
                "**switch off** individual codes, or **perturb** the code vectors. The token grids, the "
                "reconstructions and the rate-distortion plot follow.")
    _lab()


# --------------------------------------------------------------------------------------------- (b) the transformer
def _samples_extra(view, status):
    meta = view.latest.get("meta")
    if meta:
        st.caption(f"Vocabulary: {meta['n_embeddings']} codes + <bos>. A model that knows nothing scores "
                   f"ln {meta['vocab_size']} = {meta['ln_vocab']:.2f} nats/token; {meta['train_images']} training "
                   f"images use {meta['codes_used_in_train']} distinct codes.")
    ui.run_samples(view, status, view.artifact("samples"),
                   lambda imgs, final: viz.image_grid(imgs, ncols=10, levels=4, scale=2),
                   note=", decoded to images by the tokenizer")
    res = status.get("result")
    if res:
        ref = f"{res['test_loss'] - REFERENCE:+.3f} vs the course's {REFERENCE} (its own data and tokenizer)"
        st.metric("final test loss", f"{res['test_loss']:.3f} nats/token", ref, delta_color="off", delta_arrow="off")
        st.caption(f"Coded with these probabilities an image costs 49 × {res['test_loss']:.3f} / ln 2 ≈ "
                   f"{q4.prior_bits(res['test_loss']):.0f} bits (the course's {REFERENCE}: "
                   f"≈ {q4.prior_bits(REFERENCE):.0f} bits)."
                   + (f" A fixed-length code spends {q4.fixed_bits(meta['n_embeddings']):.0f}." if meta else ""))


@st.cache_resource(max_entries=2, show_spinner="Loading the model and its tokenizer…")
def _pretrained_model(name: str):
    model, config = q4.load_transformer(f"pretrained:{name}")
    where = q4.find_tokenizer(config["tokenizer"])
    if config.get("tokenizer_sha256") and where.sha256 != config["tokenizer_sha256"]:
        raise ValueError(f"{name} was trained with another version of {where.label}; retrain it")
    return model, q4.load_tokenizer(where.source)


def _pretrained_samples(name: str, seed: int, temperature: float):
    """100 samples with a progress bar (49 tokens, all images at once); kept for this session per setting."""
    key = (name, seed, temperature)
    if ui.kept("q4b:pt", key) is not None:
        return ui.kept("q4b:pt", key)
    model, tok = _pretrained_model(name)
    n = q4.N_FINAL
    bar = st.progress(0.0, text=f"Sampling 49 tokens for {n} images…")
    with ui.server_work("drawing samples"):
        imgs = q4.sample_images(model, tok, n, seed, temperature, step_callback=lambda i, *_: bar.progress(
            min(1.0, (i + 1) / 49), text=f"token {min(i + 1, 49)} of 49 for {n} images, then decoding"))[0]
    bar.empty()
    ui.keep("q4b:pt", key, imgs)
    return imgs


with tab_b:
    st.markdown("The Q3 transformer (from primitives, learned positions) reads <bos> and then the 49 tokens of an "
                "image, row by row, and learns p(token | earlier tokens). The data set is tokenized once (you "
                "see the progress), then training starts; after every epoch it draws a few images.")
    shipped = checkpoints.find(question="q4b", dataset=dataset)
    if shipped:
        e = shipped[0]
        with st.expander(f"Pretrained: {e['name']} — test loss {e['test_loss']:.3f} nats/token", expanded=False):
            ui.shipped_notes("q4b", dataset)
            c1, c2 = st.columns(2)
            s = c1.number_input("seed", 0, 10**6, 0, key="q4b:pt:seed")
            temp = c2.slider("temperature", 0.1, 2.0, 1.0, 0.1, key="q4b:pt:temp")
            if st.button("Draw 100 samples", key="q4b:pt:go"):
                try:
                    _pretrained_samples(e["name"], int(s), float(temp))
                except (ValueError, checkpoints.CheckpointError) as err:
                    st.error(str(err))
            imgs = ui.kept("q4b:pt", (e["name"], int(s), float(temp)))   # drawn before: still shown
            if imgs is not None:
                st.image(viz.image_grid(imgs, ncols=10, levels=4, scale=2), caption=f"100 samples of {e['name']}")
    opts = q4.available_tokenizers(dataset, owner=ui.viewer())
    qb = get("q4b")
    if not opts:
        _no_tokenizer_note()
    else:
        st.caption("Tokenizers: " + " · ".join(f"`{v}` = {label}" for v, label in opts))
        ui.shipped_notes("q4a", dataset)
        ui.train_panel(ui.with_choices(qb, "tokenizer", [v for v, _ in opts]), dataset)
    ui.run_monitor(ui.current_run(qb, dataset), extra=_samples_extra, unit="nats/token", key="q4b")
