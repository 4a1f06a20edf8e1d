"""Q2 — PixelCNN: masked convolutions, the blind spot, live training, samples drawn pixel by pixel, completions."""
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import data, viz
from core.questions import get, q2
import ui

ui.in_app()

TITLES = data.titles("shapes", "mnist", "shapes-colored", "mnist-colored")

st.title("🧱 Q2 · PixelCNN")
st.markdown(
    r"A PixelCNN writes an image **one pixel at a time**, row by row, left to right, and models "
    r"$p(x) = \prod_i p(x_i \mid x_{<i})$. A stack of convolutions computes every one of these conditionals in a "
    "single pass — provided no output ever looks at its own pixel or a later one. **Masked convolutions** "
    "guarantee it: each k×k kernel is multiplied by a mask that zeroes every tap below the centre row and right "
    "of the centre.\n"
    "- **Type A** (the first layer) masks the centre too: pixel i must not see its own value.\n"
    "- **Type B** (every later layer) keeps the centre: there the centre position already holds features "
    "computed only from pixels before i, so looking at it is safe.\n"
    "- **Colour (Q2b).** A pixel has three 2-bit channels (r, g, b). We predict them **independently given the "
    r"previous pixels**: $p(x_i \mid x_{<i}) = \prod_c p(x_i^c \mid x_{<i})$, a 4-way softmax per channel. So the "
    "masks depend on position only (all channels of earlier pixels feed all channels of pixel i), and sampling "
    "draws a pixel's three channels at once. The price: within a pixel, red tells green nothing — the original "
    "PixelCNN also orders the channels (R → G → B) with channel masks.\n\n"
    "Training is parallel (one forward pass scores every pixel of every image); sampling is sequential, H·W steps. "
    "The loss is in nats per dimension (per pixel channel).")

# ------------------------------------------------------------------------------------------------------ the mask
CATS_MASK = (("#d9d9d9", "forced to zero"), ("#1f77b4", "may be non-zero"), ("#f4b6b6", "centre, masked (A)"),
             ("#d62728", "centre, kept (B)"))
CATS_FIELD = (("#d9d9d9", "later pixel (must not be seen)"), ("#1f77b4", "seen"),
              ("#ff7f0e", "the blind spot: never seen, however deep"), ("#d62728", "the pixel predicted"),
              ("#fdd0a2", "earlier, out of reach of this depth"))   # the values of q2.receptive_map


def cat_map(z, cats, height, key):
    """A heatmap of small ints 0..len(cats)-1, one colour per category, with cell borders and hover labels."""
    n = len(cats)
    scale = [x for i, (c, _) in enumerate(cats) for x in ([i / n, c], [(i + 1) / n, c])]
    labels = np.array([c[1] for c in cats], dtype=object)[z]
    fig = go.Figure(go.Heatmap(z=z, zmin=-0.5, zmax=n - 0.5, colorscale=scale, showscale=False, xgap=1, ygap=1,
                               customdata=labels, hovertemplate="row %{y}, col %{x}: %{customdata}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), plot_bgcolor="white")
    st.plotly_chart(fig, key=key, config={"displayModeBar": False})


def legend(cats):
    st.caption(" · ".join(f"<span style='color:{c}'>■</span> {label}" for c, label in cats), unsafe_allow_html=True)


@st.cache_data(max_entries=64, show_spinner=False)
def field_map(layers, k, row, col, size=20):
    return q2.receptive_map(layers, k, size, size, row, col)


st.header("The mask")
c1, c2, c3 = st.columns([1, 1, 2])
k = c1.select_slider("kernel size", [3, 5, 7, 9], value=7, key="q2:mask:k")
for col, kind in ((c2, "A"), (c3, "B")):
    m = q2.mask_array(kind, k).astype(int)
    m[k // 2, k // 2] = 2 if kind == "A" else 3
    with col:
        st.markdown(f"**Type {kind}** · {int((m > 0).sum()) - (kind == 'A')} of {k * k} taps")
        cat_map(m, CATS_MASK, 170, f"q2:mask:{kind}:{k}")
legend(CATS_MASK)
st.markdown(
    f"Only the top {k // 2 + 1} rows of a {k}×{k} kernel can ever be non-zero, so the fast masked convolution "
    "crops the kernel to them (the input padded on top only): the same function with about half the work. "
    "The **fast masked conv** switch below trains with it (on) or with the plain full kernel × mask (off).")
st.markdown(q2.BLIND_SPOT)
c1, c2, c3, c4 = st.columns(4)
layers = c1.slider("type-B layers", 0, 8, 5, key="q2:rf:layers", help="the Q2a net has 5 (plus the type-A layer)")
rk = c2.select_slider("kernel", [3, 5, 7], value=7, key="q2:rf:k")
row = c3.slider("pixel row", 0, 19, 12, key="q2:rf:row")
col = c4.slider("pixel column", 0, 19, 9, key="q2:rf:col")
fm = field_map(layers, rk, row, col)
left, right = st.columns([2, 3])
with left:
    cat_map(fm, CATS_FIELD, 330, f"q2:rf:{layers}:{rk}:{row}:{col}")
with right:
    legend(CATS_FIELD)
    earlier = row * 20 + col
    st.markdown(f"On a 20×20 image, pixel ({row}, {col}) comes after **{earlier}** pixels. The net "
                f"(one {rk}×{rk} type-A layer, {ui.plural(layers, 'type-B layer')}, two 1×1) sees "
                f"**{int((fm == 1).sum())}** of them; **{int((fm == 2).sum())}** are in the blind spot"
                + (f" and **{int((fm == 4).sum())}** out of reach of this depth." if (fm == 4).any() else "."))
    st.caption(q2.field_text(layers, rk, row, col, out_of_reach=bool((fm == 4).any())))
    st.caption("Nothing after the pixel is ever seen (grey): that is the autoregressive property the tests check.")

# ------------------------------------------------------------------------------------------------------ data + train
st.header("Train")
dataset, train, test = ui.pick_dataset(TITLES, key="q2:dataset")
H, W, C = train.shape[1:]
LEVELS = 2 if C == 1 else 4
q = get("q2a" if C == 1 else "q2b")


def big(images, scale=4, ncols=10, levels=None):
    return viz.image_grid(images, ncols=ncols, levels=levels or LEVELS, scale=scale)


c1, c2 = st.columns([1, 3])
c1.image(big(train[:8], scale=3, ncols=4), caption="training images")
c2.markdown(f"**{q.title}** ({q.key}) · {len(train):,} training and {len(test):,} test images of {H}×{W}×{C}, "
            f"values 0..{LEVELS - 1}. A uniform guess costs ln {LEVELS} = {np.log(LEVELS):.3f} nats/dim.")
c2.caption("Presets: **quick** is a smaller net on a 6,000-image subset that learns visibly on a 2-core CPU: "
           f"{ui.quick_time(q.key, dataset)} (MNIST sets: the 10,000 test images are scored after every epoch). "
           "**homework** is the notebook's net and settings, "
           "meant for a GPU, but shapes fit a CPU too (2 cores: ~1 minute per epoch, 10 epochs in ~9.5 minutes; "
           "~2 minutes per epoch on coloured shapes).")
ui.shipped_notes(q.key, dataset)
ui.train_panel(q, dataset)


def train_extra(view, status):
    res = status.get("result")
    if res:
        ui.result_metrics(res, q.reference.get(dataset), ("bits per dim", f"{res['bits_per_dim']:.4f}"))
    if status.get("state") == "running" and view.epochs and len(view.test) > view.epochs and "progress" in view.latest:
        p = view.latest["progress"]
        st.progress(min(max(p["frac"], 0.0), 1.0), text=p.get("msg", ""))
    ui.run_samples(view, status, view.artifact("samples") or view.artifact("preview"),
                   lambda imgs, final: big(imgs, scale=3 if final else 5, ncols=10 if final else 5))


ui.run_monitor(ui.current_run(q, dataset), extra=train_extra, key=q.key)

# ------------------------------------------------------------------------------------------------------ sampling
st.header("Samples and completions")
picked = ui.model_picker(("q2a", "q2b"), dataset, key=f"q2:model:{dataset}", device=ui.device(),
                         empty=f"No model for {TITLES[dataset]} yet: the pretrained checkpoint "
                               f"`{q2.PRETRAINED[dataset]}` is not shipped yet and no run on this set has finished. "
                               f"Train one above (quick preset: {ui.quick_time(q.key, dataset, short=True)}).")
if picked is None:
    st.stop()
source, (model, config) = picked


def row_progress(bar, what, rows):
    """on_row callback: move a progress bar once per row."""
    t0 = time.time()

    def on_row(r, _):
        done = r + 1 - (H - rows)
        bar.progress(done / rows, text=f"{what}: row {r + 1} of {H} · {time.time() - t0:.1f} s")
    return on_row


tab_sample, tab_watch, tab_complete = st.tabs(["Sample", "Watch one being drawn", "Complete half images"])
with tab_sample:
    c1, c2 = st.columns(2)
    n = c1.number_input("samples", 1, 100, 25, key="q2:sample:n")
    seed = c2.number_input("seed", 0, 2**31 - 1, 0, key="q2:sample:seed")
    if st.button("Draw samples", key="q2:sample:go", icon="🎲"):
        bar = st.progress(0.0, text="starting…")
        with ui.server_work("drawing samples"):
            imgs = q2.draw(model, int(n), (H, W, C), int(seed), on_row=row_progress(bar, f"drawing {n} samples", H))
        bar.empty()
        st.session_state["q2:samples"] = (source, int(n), int(seed), imgs)
    done = st.session_state.get("q2:samples")
    if done and done[:3] == (source, int(n), int(seed)):
        st.image(big(done[3], scale=3, ncols=min(10, int(np.ceil(np.sqrt(n))))), caption=f"{n} samples, seed {seed} (same seed, same samples)")

with tab_watch:
    st.markdown(f"One image, {H * W} steps: at each step the net gives the distribution of the next pixel "
                "from the pixels drawn so far, and one value is drawn from it. The image below is redrawn after "
                "every row; grey = not drawn yet.")
    c1, c2 = st.columns(2)
    wseed = c1.number_input("seed", 0, 2**31 - 1, 1, key="q2:watch:seed")
    pause = c2.slider("pause per row (s)", 0.0, 0.3, 0.05, 0.05, key="q2:watch:pause")
    if st.button("Draw one", key="q2:watch:go", icon="👀"):
        slot, text = st.empty(), st.empty()

        def show(r, x):
            rgb = viz.to_rgb(x[:1], LEVELS)[0].copy()
            rgb[r + 1:] = 128
            slot.image(np.kron(rgb, np.ones((12, 12, 1), np.uint8)))
            text.caption(f"row {r + 1} of {H}")
            time.sleep(pause)

        with ui.server_work("drawing samples"):
            q2.draw(model, 1, (H, W, C), int(wseed), on_row=show)

with tab_complete:
    st.markdown("Take test images, keep their **top half**, and let the model draw the rest several times with "
                "different random numbers. Each row: the original, what the model is given, its completions.")
    c1, c2, c3 = st.columns(3)
    n_img = c1.number_input("test images", 1, 8, 4, key="q2:complete:n")
    k_done = c2.number_input("completions each", 1, 8, 5, key="q2:complete:k")
    cseed = c3.number_input("seed", 0, 2**31 - 1, 0, key="q2:complete:seed")
    idx = np.random.default_rng(int(cseed)).choice(len(test), int(n_img), replace=False)
    if st.button("Complete", key="q2:complete:go", icon="🖌️"):
        bar = st.progress(0.0, text="starting…")
        with ui.server_work("completing images"):
            out = q2.complete(model, test[idx], int(k_done), int(cseed),
                              on_row=row_progress(bar, f"drawing {H - H // 2} rows", H - H // 2))
        bar.empty()
        st.session_state["q2:completion"] = (source, int(n_img), int(k_done), int(cseed), out)
    done = st.session_state.get("q2:completion")
    if done and done[:4] == (source, int(n_img), int(k_done), int(cseed)):
        orig = viz.to_rgb(test[idx], LEVELS)
        given = orig.copy()
        given[:, H // 2:] = 128
        comps = viz.to_rgb(done[4].reshape(-1, H, W, C), LEVELS).reshape(len(idx), int(k_done), H, W, 3)
        rows = np.concatenate([orig[:, None], given[:, None], comps], 1).reshape(-1, H, W, 3)
        st.image(big(rows, scale=4, ncols=int(k_done) + 2, levels=256),
                 caption="original · top half given · completions")
