"""Report: the homework's write-up — every figure under the course's file name and every final loss, from your
finished runs or the shipped checkpoints, with downloads."""
import json
import tempfile
from pathlib import Path

import streamlit as st

import ui
from core import checkpoints, report

ui.in_app()

st.title("📝 Report")
st.markdown(
    "The homework asks for a write-up: for every question and data set, the **final test loss** and a few "
    "**figures** (training curve, samples, …) saved under fixed file names. This page collects them from your "
    "**finished runs** or from the **shipped checkpoints**, sets each loss beside the course's reference and the "
    "range students reached, and lets you download the lot. Nothing is faked: an item with no run and no "
    "checkpoint is listed as missing. A shipped checkpoint carries no training curve, so its train plot is "
    "missing until you train a run. The same report from a terminal: `python -m core report --out DIR`.")

root = ui.store().root
prefer = st.radio("Prefer", ["runs", "pretrained"], horizontal=True, key="report:prefer",
                  format_func={"runs": "my finished runs (else the shipped checkpoint)",
                               "pretrained": "the shipped checkpoints (else my runs)"}.get)
picks = {}
with st.expander("Sources, item by item", expanded=False):
    st.caption("The source of each item: a finished run (`run:ID`, lowest test loss first) or a shipped "
               "checkpoint (`pretrained:NAME`), in the order **Prefer** asks for; its test loss first.")
    cols = st.columns(2)
    for i, (q, ds) in enumerate((q, ds) for q in report.QUESTIONS for ds in report.DSETS[q]):
        options = report.choices(q, ds, root, prefer, owner=ui.viewer())
        # keyed by the preference too: switching it starts every item from that preference's first source
        picks[(q, ds)] = cols[i % 2].selectbox(f"{q} · {ds}", options + [""], key=f"report:src:{prefer}:{q}:{ds}",
                                               format_func=lambda src, q=q: report.source_label(q, src, root))
seed = st.number_input("seed for samples drawn from checkpoints", 0, 2**31 - 1, 0, key="report:seed")


def build(picks: dict, seed: int) -> dict:
    """Build the report in a temporary folder (removed when done), its progress step by step, and keep what the page
    shows and offers, in memory: {"items", "files": {name: bytes}, "zip": bytes}."""
    with tempfile.TemporaryDirectory(prefix="arlab-report-") as tmp:
        out = Path(tmp)
        bar = st.progress(0.0, text="starting")
        items = report.build(picks, out, root, int(seed), explain=ui.plain, progress=lambda k, n, what: bar.progress(
            (k - 1) / n, text=f"step {k} of {n} · {what}"))
        bar.empty()
        made = {n for it in items for n in it.figures}
        keep = made | {"summary.json", "writeup.md", "writeup.pdf"}
        return {"items": items, "zip": report.zip_folder(out, keep),
                "files": {n: (out / n).read_bytes() for n in keep if (out / n).exists()}}


@st.cache_resource
def _shipped_builds() -> dict:
    """Reports built from shipped checkpoints alone, for the whole server: {(picks, seed, manifest): built}. They
    are the same for everyone with the same seed, so the second learner to ask gets the first one's at once."""
    return {}


if st.button("Build the report", type="primary", icon="📝", key="report:build",
             disabled=st.session_state.get("report:building", False)):
    st.session_state["report:building"] = True   # one build per session at a time
    shipped_only = all(not src or src.startswith("pretrained:") for src in picks.values())
    known = (tuple(sorted(picks.items())), int(seed), checkpoints.MANIFEST.stat().st_mtime_ns) \
        if shipped_only and checkpoints.MANIFEST.exists() else None
    try:
        if known in _shipped_builds():
            st.session_state["report:out"] = _shipped_builds()[known]
        else:
            with ui.server_work("building reports"):  # ARLAB_SERVER_JOBS at a time, one per learner, fairly
                st.session_state["report:out"] = built_now = build(picks, int(seed))
            if known is not None:
                cache = _shipped_builds()
                cache[known] = built_now
                while len(cache) > 4:
                    cache.pop(next(iter(cache)))
    finally:
        st.session_state["report:building"] = False

if "report:out" not in st.session_state:
    st.info("Pick the sources (or keep the defaults) and press **Build the report**. Drawing samples from the "
            "shipped checkpoints takes a minute or two on a CPU.")
    st.stop()

built = st.session_state["report:out"]
items, files = built["items"], built["files"]
made = sorted(n for it in items for n in it.figures)
missing = {n: why for it in items for n, why in it.missing.items()}
c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
c1.download_button(f"{len(made)} figures + summary + write-up (zip)", built["zip"],
                   "homework1_figures.zip", "application/zip", key="report:dl:zip")
c2.download_button("summary.json", files["summary.json"], "summary.json", "application/json",
                   key="report:dl:summary")
c3.download_button("write-up (.md)", files["writeup.md"], "writeup.md", "text/markdown",
                   key="report:dl:md")
c4.download_button("write-up (PDF)", files["writeup.pdf"], "writeup.pdf", "application/pdf",
                   key="report:dl:pdf")
st.caption(f"{len(made)} figures made, {len(missing)} missing. The zip holds exactly the figures listed below, "
           "summary.json and the write-up.")

for q in report.QUESTIONS:
    st.subheader(report.HEADINGS[q])
    for it in (it for it in items if it.question == q):
        ref = report.reference_of(q, it.dataset)
        n = report.dset_number(q, it.dataset)
        line = f"**Dataset {n}** ({it.dataset}) · {report.loss_text(it)}"
        if it.source:
            line += f" · from `{it.source}`"
        if ref["reference"] is not None and q != "q3c":
            line += f" · course's reference {ref['reference']}"
        if ref["students"] and q != "q3c":
            line += f" · students {ref['students'][0]}–{ref['students'][1]}"
        st.markdown(line)
        if not it.source or it.missing:
            st.caption(f"To make what is missing: {report.make_in_app(q, it.dataset)}, then build the report again.")
        figs = [n for n in report.figure_names(q, it.dataset) if n in it.figures]
        if figs:
            cols = st.columns(len(figs))
            for col, name in zip(cols, figs):
                col.image(files[name], caption=name)
        for name, why in it.missing.items():
            st.caption(f"⚠️ `{name}` missing: {why}")

with st.expander("summary.json"):
    st.json(json.loads(files["summary.json"]), expanded=False)
