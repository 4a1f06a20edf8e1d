"""Q3 — iGPT: a causal transformer on pixels; completions, attention, and the KV-cache race."""
import numpy as np
import plotly.colors as pc
import streamlit as st

from core import data, viz
from core.questions import get, q3
import ui

ui.in_app()

TITLES = data.titles("shapes", "mnist", "shapes-colored", "mnist-colored")

st.title("⚡ Q3 · iGPT: a transformer on pixels")
st.markdown(
    "Q2's PixelCNN sees the past through masked convolutions. A **transformer** sees it through **causal "
    "attention**: an image is read as a sequence, one token per pixel in raster order, and every position may "
    "look at every earlier one — but never at a later one. Same factorisation, p(x) = Π p(xᵢ | x₍<ᵢ₎).\n"
    "- **Tokens.** A binary pixel is token 0 or 1. A colour pixel (r, g, b), each in 0..3, is **one** token "
    "r·16 + g·4 + b of 64 values. A **<bos>** token (id 2, or 64 for colour) starts every image, so the first "
    "pixel is predicted from <bos> alone, and sampling starts from [<bos>].\n"
    "- **Loss in nats per pixel token**, the course's unit: the model pays one cross-entropy per pixel. A binary "
    "pixel is one dimension (nats/dim; uniform guess ln 2 ≈ 0.69); a colour pixel is one token of 64 values "
    "(nats/token; uniform guess ln 64 ≈ 4.16) — the references are **0.0397** on binary shapes and **0.0541** per "
    "token on coloured shapes. (The Q2b PixelCNN reports colour per sub-pixel: divide by 3 to compare.)\n"
    "- **The KV cache (Q3c).** Drawing a pixel needs the keys and values of all earlier ones. Without a cache "
    "the whole prefix is run through the model again at every step; with one, a step computes Q, K, V for the "
    "new token only and attends over the stored keys and values of the rest. Race both below.")

dataset, train, test = ui.pick_dataset(TITLES, key="q3:dataset")
H, W, C = train.shape[1:]
LEVELS = 2 if C == 1 else 4
q = get("q3a" if C == 1 else "q3b")
vocab, bos = q3.vocab(C)
st.caption(f"{len(train):,} training and {len(test):,} test images of {H}x{W}x{C} · sequences of {H * W} pixel "
           f"tokens + <bos> · vocabulary {vocab} · a uniform guess costs ln({vocab - 1}) = "
           f"{np.log(vocab - 1):.3f} {q.unit}.")


def big(images, scale=6, ncols=10):
    return viz.image_grid(images, ncols=ncols, levels=LEVELS, scale=scale)


NO_MODEL = (f"No model for {TITLES[dataset]} yet: the pretrained checkpoint `{q3.PRETRAINED[dataset]}` is not shipped "
            "yet and no run on this set has finished. Train one in the first tab.")


VIRIDIS = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in pc.sequential.Viridis], float)


def heat(m):
    """(H, W) weights, NaN where nothing is visible -> uint8 RGB: Viridis scaled to the largest weight, NaN grey."""
    v = np.nan_to_num(m / max(np.nanmax(m), 1e-12)) * (len(VIRIDIS) - 1)
    lo = np.clip(np.floor(v).astype(int), 0, len(VIRIDIS) - 2)
    rgb = VIRIDIS[lo] + (v - lo)[..., None] * (VIRIDIS[lo + 1] - VIRIDIS[lo])
    rgb[np.isnan(m)] = 225
    return rgb.round().astype(np.uint8)


tab_train, tab_complete, tab_next, tab_attn, tab_race = st.tabs(
    ["Train (Q3a · Q3b)", "Complete half images", "Next pixel, step by step", "Attention", "KV-cache race (Q3c)"])

# ------------------------------------------------------------------------------------------------------- train
with tab_train:
    with st.expander("How an image becomes tokens"):
        img = train[0]
        toks = q3.encode(img[None])[0].tolist()
        c1, c2 = st.columns([1, 3])
        c1.image(big(img[None], scale=8), caption="training image 0")
        c2.markdown(f"First row as tokens, after <bos>={bos}: `{toks[: 1 + W]}`")
        if C == 3:
            r, g, b = img[0, 0]
            c2.markdown(f"Top-left pixel (r, g, b) = ({r}, {g}, {b}) → token {r}·16 + {g}·4 + {b} = **{toks[1]}**.")
    st.caption(f"Presets: **quick** learns visibly on a laptop CPU ({ui.quick_time(q.key, 'shapes', short=True)} "
               "on shapes; MNIST sets: use **quick-mnist**, one pass over 12,000 images: 3–5 minutes when it scored "
               "all 10,000 test images before and after, less now that the first point scores 1,000 of them); "
               "**homework** is the "
               "notebook's setting (d_model 128, 4 heads, 2 layers, 15 epochs), meant for a GPU.")
    ui.shipped_notes(q.key, dataset)
    ui.train_panel(q, dataset)

    def train_extra(view, status):
        res = status.get("result")
        if res:
            ref = q.reference.get(dataset)
            unit = res.get("unit", q.unit)
            per_sub = res.get("nats_per_subpixel")
            ui.result_metrics(res, ref, ("nats per sub-pixel (as Q2b)", f"{per_sub:.4f}") if C == 3 and per_sub
                              else ("bits per " + unit.split("/")[1], f"{res['bits_per_dim']:.4f}"), unit=unit)
            if ref:
                st.caption("The reference was reached on the course's own data; ours is generated with the same "
                           "shapes and value ranges (see the Data sets page), so compare loosely.")
        ui.run_samples(view, status, view.artifact("samples"),
                       lambda imgs, final: big(imgs, scale=3 if final else 5,
                                               ncols=10 if final else int(np.ceil(np.sqrt(len(imgs))))),
                       note=" (drawn with the KV cache)")

    ui.run_monitor(ui.current_run(q, dataset), extra=train_extra, unit=q.unit, key=q.key)

# ------------------------------------------------------------------------------------------------------- complete
with tab_complete:
    st.markdown("Keep the **top rows** of a test image, feed them after <bos> as a prefix, and let the model "
                "write the rest, one pixel at a time (the prefix goes into the KV cache in one pass).")
    picked = ui.model_picker(("q3a", "q3b"), dataset, "q3:complete:model", empty=NO_MODEL)
    if picked:
        model, config = picked[1]
        c1, c2 = st.columns(2)
        keep = c1.slider("rows kept", 1, H - 1, H // 2, key="q3:complete:keep")
        seed = c2.number_input("seed", 0, 2**31 - 1, 0, key="q3:complete:seed")
        idx = np.random.default_rng(int(seed)).choice(len(test), 10, replace=False)
        if st.button("Complete 10 test images", key="q3:complete:go", icon="🖌️"):
            total = (H - keep) * W
            bar = st.progress(0.0, text=f"Drawing {total} pixels for 10 images…")
            with ui.server_work("completing images"):
                st.session_state["q3:completion"] = (dataset, keep, int(seed), q3.complete(
                    model, config, test[idx], keep, int(seed),
                    step_callback=lambda s, *_: bar.progress((s + 1) / total, text=f"pixel {s + 1} of {total}")))
            bar.empty()
        done = st.session_state.get("q3:completion")
        if done and done[:3] == (dataset, keep, int(seed)):
            given = viz.to_rgb(test[idx], LEVELS).copy()
            given[:, keep:] = 225  # the hidden part, light grey
            for name, imgs, levels in (("originals", test[idx], LEVELS), ("what the model sees", given, 256),
                                       ("completions", done[3], LEVELS)):
                st.image(viz.image_grid(imgs, ncols=10, levels=levels, scale=5), caption=name)

# ------------------------------------------------------------------------------------------------------- next pixel
with tab_next:
    st.markdown("Draw an image **one pixel at a time** with the cached sampler. The bars are the model's "
                "probabilities for the next pixel — exactly what the sampler draws from — reshaped live by the "
                "temperature and top-k; for colour, each bar is painted its colour. The red square marks where the "
                "next pixel goes; the highlighted bar is the value a draw picks.")
    picked = ui.model_picker(("q3a", "q3b"), dataset, "q3:next:model", empty=NO_MODEL)
    if picked:
        model, config = picked[1]
        values = vocab - 1
        swatch = ([f"rgb({r * 85},{g * 85},{b * 85})" for r, g, b in q3.decode(np.arange(64)[None], (1, 64, 3))[0, 0]]
                  + ["#999"] if C == 3 else None)   # colour bars painted their colour; binary ones plain

        def _label(i):
            if i == bos:
                return "<bos>"
            return str(i) if C == 1 else "({},{},{})".format(i // 16, i // 4 % 4, i % 4)

        def _render(stepper, chosen):
            drawn = stepper.tokens[1:]
            img = np.full((H * W, 3), (176, 190, 214), np.uint8)   # not drawn yet: blue-grey
            if drawn:
                img[:len(drawn)] = viz.to_rgb(q3.decode(np.array(drawn)[None], (1, len(drawn), C)), LEVELS)[0, 0]
            img = img.reshape(H, W, 3)
            big_img = np.kron(img, np.ones((12, 12, 1), np.uint8))
            if len(drawn) < H * W:
                r, c = divmod(len(drawn), W)
                big_img[r * 12:(r + 1) * 12, c * 12:(c + 1) * 12] = (255, 0, 0)
            big_img = np.pad(big_img, ((2, 2), (2, 2), (0, 0)), constant_values=90)   # a frame: white pixels show
            st.image(big_img, caption=f"{len(drawn)} of {H * W} pixels drawn (blue-grey: not yet; red: next)")

        ui.next_token_panel(f"q3:{dataset}:{st.session_state.get('q3:next:model')}",
                            lambda: q3.stepper(model, config), _label, _render,
                            colors=swatch, max_top_k=values)

# ------------------------------------------------------------------------------------------------------- attention
with tab_attn:
    st.markdown("Pick a pixel of a test image: the position that predicts it attends over <bos> and the pixels "
                "before it, in every head of every layer. Nothing from the pixel on is visible (grey) — that is the "
                "causal mask.")
    picked = ui.model_picker(("q3a", "q3b"), dataset, "q3:attn:model", empty=NO_MODEL)
    if picked:
        model, config = picked[1]
        c1, c2, c3 = st.columns(3)
        i = c1.number_input("test image", 0, len(test) - 1, 0, key="q3:attn:img")
        r = c2.slider("row", 0, H - 1, H // 2, key="q3:attn:row")
        c = c3.slider("column", 0, W - 1, W // 2, key="q3:attn:col")
        pixel = r * W + c
        if pixel == 0:
            st.info("Pixel (0, 0) sees only <bos>: pick a later one.")
        else:
            a = q3.attention_maps(model, config, test[i], pixel)
            L, h = a["maps"].shape[:2]
            left, right = st.columns([1, 3])
            shown = viz.to_rgb(test[i:i + 1], LEVELS)[0].copy()
            shown[r, c] = (255, 0, 0)
            left.image(np.kron(shown, np.ones((10, 10, 1), np.uint8)), caption=f"pixel ({r}, {c}) in red")
            true = int(q3.pixel_tokens(test[i:i + 1])[0, pixel])
            left.caption(f"The model gives the true value (token {true}) probability **{a['probs'][true]:.3f}**.")
            right.caption("Each square: one head of one layer, the attention weights of the position that predicts "
                          "the red pixel, brightest = most (scaled per square); grey = not visible (that pixel and "
                          "everything after it). The weight left on <bos> is in the caption.")
            for l in range(L):
                for k in range(h):
                    if k % 4 == 0:
                        cols = right.columns(min(4, h))
                    rgb = heat(a["maps"][l, k])
                    rgb[r, c] = (255, 0, 0)
                    cols[k % 4].image(np.kron(rgb, np.ones((6, 6, 1), np.uint8)),
                                  caption=f"layer {l + 1} · head {k + 1} · <bos> {a['bos'][l, k]:.2f}")

# ------------------------------------------------------------------------------------------------------- race
with tab_race:
    race_q = get("q3c")
    st.markdown(q3.RACE_TEXT)
    colour_sets = [d for d in q3.COLOUR_SETS]
    race_set = st.radio("Race on", colour_sets, index=colour_sets.index("mnist-colored"), horizontal=True,
                        format_func=TITLES.get, key="q3:race:dataset")
    picked = ui.model_picker("q3b", race_set, "q3:race:model", load=False,
                             empty=f"No colour model for {TITLES[race_set]} yet: the pretrained checkpoint "
                                   f"`{q3.PRETRAINED[race_set]}` is not shipped yet and no Q3b run on this set has "
                                   f"finished. Train one in the first tab (coloured shapes, quick preset: "
                                   f"{ui.quick_time('q3b', 'shapes-colored', short=True)}).")
    rid = None
    if picked:
        source = picked[0]
        dev = ui.device()
        c1, c2 = st.columns(2)
        n = c1.number_input("samples", 1, 100, race_q.preset(race_q.default_preset(dev))["n_samples"],
                            key="q3:race:n", help="Each sampler draws this many images in one batch. On a CPU "
                            "the uncached sampler needs 10+ minutes for 100 coloured MNIST images.")
        seed = c2.number_input("seed", 0, 2**31 - 1, 0, key="q3:race:seed")
        if st.button(q3.RACE_BUTTON, type="primary", key="q3:race:go", icon="🏁"):
            try:
                rid = ui.submit(ui.RunSpec("q3c", race_set, {"checkpoint": source, "n_samples": int(n)},
                                                seed=int(seed), label="race"))
                st.session_state[f"q3c:{race_set}:run"] = rid
            except ui.InvalidSpec as e:
                st.error("Nothing was launched: " + "; ".join(e.errors.values()))
    rid = rid or ui.current_run(race_q, race_set)

    def race_extra(view, status):
        times = {"uncached": [], "cached": []}
        for ev in view.of("race_times"):
            times[ev["sampler"]].extend(ev["times"])
        start = view.latest.get("race_start")
        if not start:
            return
        log_y = st.checkbox(q3.log_scale_label((status.get("result") or {}).get("speedup")), value=True,
                            key=f"q3c:log:{view.run_id}")
        fig = q3.race_figure(times, start["steps"], log_y)
        st.plotly_chart(fig, key=f"q3c:times:{view.run_id}")
        th = start.get("threads")
        st.caption(f"{ui.plural(start['n'], 'sample')} of {start['steps']} steps each on {start['device']}"
                   + (f" ({th} thread{'s' if th > 1 else ''}, one core left to this page and the browser)"
                      if th and th < start.get("cores", th) else "")
                   + f", model `{start['source']}`. The first cached step includes the prefill. Wall-clock "
                   "times: other work on the machine adds spikes.")
        res = status.get("result")
        if res:
            c1, c2, c3 = st.columns(3)
            per = lambda sec: f"{1e3 * sec / res['steps']:.2f} ms per step on average"
            c1.metric("without cache", f"{res['seconds_uncached']:.2f} s", per(res["seconds_uncached"]),
                      delta_color="off", delta_arrow="off")
            c2.metric("with cache", f"{res['seconds_cached']:.2f} s", per(res["seconds_cached"]),
                      delta_color="off", delta_arrow="off")
            c3.metric("speed-up", f"{res['speedup']:.1f}x")
            left, right = st.columns(2)
            rdir = ui.store().dir(view.run_id)
            for col, name, what in ((left, "no_cache", "without cache"), (right, "with_cache", "with cache")):
                imgs = np.load(rdir / f"{name}.npy")
                col.image(viz.image_grid(imgs, ncols=min(10, len(imgs)), levels=4, scale=3 if len(imgs) > 10 else 4),
                          caption=what)
            if res["identical"] == res["n_samples"]:
                st.success(f"Identical: {'all ' if res['n_samples'] > 1 else ''}{ui.plural(res['n_samples'], 'sample')} "
                           f"match{'es' if res['n_samples'] == 1 else ''} pixel for pixel — the cache changes "
                           f"the cost, not the model.")
            else:
                st.warning(f"{res['identical']} of {ui.plural(res['n_samples'], 'sample')} match. A mismatch means the two paths "
                           f"computed logits that differ enough to flip a draw (float rounding, or a cache bug).")

    if rid:
        ui.run_monitor(rid, extra=race_extra, show_curve=False, key="q3c")
    elif picked:   # (without a model the picker has said what to do)
        st.info(q3.RACE_EMPTY)
