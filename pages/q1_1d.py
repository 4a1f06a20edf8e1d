"""Q1 — 1-D data: a histogram and a discretized mixture of logistics, trained live and compared."""
import numpy as np
import streamlit as st

from core import viz
from core.questions import get
from core.questions.q1 import D
import ui

ui.in_app()

st.title("📊 Q1 · One discrete variable")
st.markdown(
    "The simplest autoregressive model has nothing to condition on: it is just a distribution over the values "
    "of **one** discrete variable x ∈ {0, …, d−1}. Two ways to parameterise it:\n"
    "- **Histogram** — one free logit per value: p(x) = softmax(θ)ₓ. Flexible, but every value is learned "
    "separately, so rare values are learned from few examples.\n"
    "- **Discretized mixture of logistics** — a few smooth bumps: p(x) = Σᵢ πᵢ [σ((x+½−μᵢ)/sᵢ) − σ((x−½−μᵢ)/sᵢ)], "
    "with the end bins stretched to ±∞ so the d probabilities sum to 1. Few parameters; it shares strength "
    "between neighbouring values.\n\n"
    "Both are fitted by minimising the negative log-likelihood (nats per example). Train each and compare.")

dataset, train, test = ui.pick_dataset({"1d-1": "set 1 — 20 values, one Gaussian",
                                        "1d-2": "set 2 — 100 values, three Gaussians"}, key="q1:dataset")
d = D[dataset]
st.caption(f"{len(train)} training and {len(test)} test values in 0..{d - 1}.")

left, right = st.columns(2)
runs = {}
for col, key in zip((left, right), ("q1a", "q1b")):
    q = get(key)
    with col:
        st.subheader(q.title)
        ui.train_panel(q, dataset)
        runs[key] = ui.current_run(q, dataset)


def _show_dist(key):
    def extra(view, status):
        probs = view.latest.get("dist", {}).get("probs")
        if probs:
            st.plotly_chart(viz.distribution_plot(train, d, {get(key).title: np.array(probs)}),
                            key=f"q1dist:{key}:{view.run_id}")
        res = status.get("result")
        if res:
            q = get(key)
            ref = q.reference.get(dataset)
            st.metric("final test loss", f"{res['test_loss']:.4f} {q.unit}",
                      f"{res['test_loss'] - ref:+.4f} vs reference {ref}" if ref else f"{res['bits_per_dim']:.4f} bits/dim",
                      delta_color="inverse" if ref else "off")
    return extra


# A Q1 run is over in seconds on an idle CPU, sooner than the monitor's usual curve redraw (ui.BODY_EVERY): its
# curve and learned distribution (small plots: at most ui.LIVE_POINTS points, 100 bars) redraw as often as its
# status line instead, so the curve grows while the run trains
for col, key in zip((left, right), ("q1a", "q1b")):
    with col:
        ui.run_monitor(runs[key], extra=_show_dist(key), key=key, body_every=ui.STATUS_EVERY)

st.subheader("Both models over the data")
finished = {}
for key, rid in runs.items():
    if rid and ui.store().status(rid).get("state") == "done":
        finished[get(key).title] = np.array(ui.store().status(rid)["result"]["probs"])
if finished:
    st.plotly_chart(viz.distribution_plot(train, d, finished), key="q1:compare")
    st.caption("Bars: the training data's histogram. Lines: each model's learned p(x) from its latest finished run.")
else:
    st.info("Train both models to see them overlaid here.")
