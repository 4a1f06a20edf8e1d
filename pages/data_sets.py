"""Data sets: every set the questions use — samples, counts, value histogram, and where it came from."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import data, viz
from core.data import colour_mnist
import ui

ui.in_app()

st.title("🗂️ Data sets")
st.markdown(
    "Every question trains on one of these sets. The real ones (MNIST, the poems) are fetched once into the "
    "data cache and checked against known checksums; the others are **generated from a seed**, so everyone gets "
    "the same images, and cached. Images hold small integers: binary {0, 1} or 2 bits per colour channel {0…3}.")

# ------------------------------------------------------------------ overview of all sets
rows = []
for n in data.NAMES:
    s, miss = data.SETS[n], data.missing(n)
    rows.append({"name": n, "what": s["title"], "format": s["shape"], "train / test": "{:,} / {:,}".format(*s["counts"]),
                 "status": f"not fetched: {data.fetch_command(n)}" if miss else "ready"})
st.dataframe(rows, hide_index=True, width="stretch")
missing_all = [r["name"] for r in rows if r["status"] != "ready"]
if missing_all:
    st.info(f"Not fetched yet: **{', '.join(missing_all)}**. Fetch everything with `python -m core.data fetch`.")

name = st.selectbox("Data set", data.NAMES, key="data:name",
                    format_func=lambda n: f"{n} — {data.SETS[n]['title']}")
meta = data.info(name)
if meta["missing"]:
    st.warning(f"**{name}** is not fetched yet (needs: {', '.join(meta['missing'])}). Fetch it with:")
    st.code(meta["fetch_command"], language="bash")
    st.stop()


@st.cache_data(show_spinner="Loading the data set…", max_entries=4)
def summary(name: str) -> dict:
    """Only small things leave this function (samples, counts, histograms), so the cache stays light."""
    out = data.load(name)
    train, test = out[0], out[1]
    s = {"n_train": len(train), "n_test": len(test)}
    if name == "poetry":
        text = "".join(train + test)
        s.update(poems=train[:3] + test[:1], chars=len(text), charset="".join(sorted(set(text))),
                 lengths=[len(p) for p in train + test])
    elif train.ndim == 1:
        s.update(train=train, d=data.SETS[name]["d"])
    else:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(train), 100, replace=False))
        s.update(samples=train[idx], shape=train.shape[1:], dtype=str(train.dtype),
                 values=np.bincount(train[:5000].ravel(), minlength=int(train.max()) + 1),
                 channels=train.shape[-1])
        if name == "mnist-v2":
            s["captions"] = [out[2][i] for i in idx]
        s["repeats"] = int(data.repeats(train, test).sum())
        if name == "mnist-colored":
            s["course"] = {k: colour_mnist.colour_stats(test, ref) for k, ref in colour_mnist.course_reference().items()}
    return s


try:
    s = summary(name)
except data.DataNotFetched as e:  # a corrupt file, or a generator that needs MNIST
    st.error(str(e))
    st.code(e.command, language="bash")
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric("Train", f"{s['n_train']:,}")
c2.metric("Test", f"{s['n_test']:,}")
if "repeats" in s:
    c3.metric("Test images that repeat a training image", f"{s['repeats']:,} ({s['repeats'] / s['n_test']:.1%})",
              help="exactly the same pixels as some training image; a test loss over them rewards memorising, so "
                   "the Q2/Q3 pages give the shipped models' loss on the new images too")
st.caption(f"Format: {meta['shape']}")

if name == "poetry":
    c1, c2 = st.columns(2)
    c1.metric("Characters", f"{s['chars']:,}")
    c2.metric("Distinct characters", len(s["charset"]))
    st.caption("Character set: `" + s["charset"].replace("\n", "\\n") + "`")
    for i, p in enumerate(s["poems"]):
        with st.expander(f"{'Test' if i == len(s['poems']) - 1 else 'Train'} poem — {p.splitlines()[0][:60]}", expanded=i == 0):
            st.text(p)
    fig = go.Figure(go.Histogram(x=s["lengths"], nbinsx=40))
    fig.update_layout(xaxis_title="characters per poem", yaxis_title="poems", height=300, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, width="stretch")
elif "train" in s:  # 1-D
    st.plotly_chart(viz.distribution_plot(s["train"], s["d"], title="Training data"), width="stretch")
else:
    if name == "mnist-v2":
        st.subheader("Samples with their captions")
        ui.pairs_grid(s["samples"][:12], s["captions"][:12], ncols=4, scale=6)
        st.caption(colour_mnist.CAPTION_RULE)
    st.subheader("100 training images")
    st.image(viz.image_grid(s["samples"], ncols=10, scale=3))
    labels = [str(v) for v in range(len(s["values"]))]
    fig = go.Figure(go.Bar(x=labels, y=s["values"] / s["values"].sum()))
    fig.update_layout(xaxis_title="value (all channels, first 5,000 training images)", yaxis_title="share",
                      height=280, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, width="stretch")
    if "course" in s:
        o, q = s["course"]["originals"], s["course"]["q4b_samples"]
        st.caption(f"Held against the course's own figures of its coloured MNIST (colours read at each pixel's "
                   f"centre): {o['colours_95']} of the 64 two-bit colours cover 95% of this set's test pixels (the "
                   f"course's originals: {o['reference_colours_95']}, its Q4b samples: {q['reference_colours_95']}); "
                   f"total-variation distance between the colour histograms {o['tv']:.2f} to the originals and "
                   f"{q['tv']:.2f} to the samples (0 = the same colours in the same shares, 1 = none shared).")

st.subheader("Where it comes from")
st.markdown(meta["source"])
details = {k: meta[k] for k in ("kind", "seed", "cache_file") if k in meta}
if meta["checksums"]:
    details["checksums"] = meta["checksums"]
st.json(details)
