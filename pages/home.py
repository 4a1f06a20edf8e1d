"""Home: what the lab is, the questions and their status, the device and the queue."""
import streamlit as st

from pathlib import Path

import ui
from core import checkpoints
from core.device import describe
from core.questions import QUESTIONS, get, reference_text

ui.in_app()

st.title("🧪 Autoregressive Lab")
st.markdown(
    "Autoregressive models write data one piece at a time, each piece conditioned on everything before it: "
    "p(x) = Π p(xᵢ | x₍<ᵢ₎). This lab walks through a graduate homework on them, question by question — "
    "histograms and mixtures of logistics, PixelCNN, a transformer on pixels with a KV cache, a transformer "
    "over VQ-VAE tokens, a character-level poet, and one model that writes both captions and images (Q6). On "
    "every page you can **train a model live** (in the background; the page keeps working), watch the loss fall "
    "in **nats per dimension**, draw samples, and compare with the course's reference numbers. Losses are "
    "averaged negative log-likelihoods: lower is better; bits = nats / ln 2.")

first = get(next(iter(QUESTIONS[0].parts)))   # Q1's first model: where a learner starts
opens_on = first.default_preset(ui.device())   # the preset its page opens on here (the train panel's own rule)
tiny = (" (Q1's models are tiny: even the homework settings, the notebook's own, train in seconds on an idle CPU)"
        if opens_on == "homework" else "")
st.subheader("Where to start")
st.markdown(
    "1. **Give your name** in the sidebar (*Your name*): your runs carry it and stay yours after a reload.\n"
    f"2. **Open Q1** (1D data) on the left, keep the preset it opens on, **{opens_on}**{tiny}, and press "
    "**Train**. Its curve draws the test loss after every epoch while it trains; the run goes on in the "
    "background while you read the page.\n"
    "3. **Compare** with the course's reference under the curve, then change one setting (the learning rate) and "
    "train again: the **Runs** page puts both curves on one chart.\n"
    "4. Go on to Q2 … Q6 the same way. Each page also has a **shipped model**, so you can draw samples at once, "
    "before training anything.\n\n"
    "**What a quick run is for:** to see a model learn and to try settings, in minutes on a laptop CPU "
    f"(Q2 on shapes: {ui.quick_time('q2a', 'shapes', short=True)}; a busy machine is slower, and a running run "
    "says its time left). Its numbers will not reach the course's: for those, the **homework** preset (meant for "
    "a GPU) or the shipped models; the **Report** page collects either into the write-up.")

who = ui.me()
c1, c2 = st.columns(2)
c1.metric("Device", describe(ui.device()))
counts = ui.store().queue_summary(owner=who.owner)
c2.metric(f"Your runs ({who.name})", f"{counts['running']} running · {counts['queued']} waiting", f"{counts['done']} done",
          delta_color="off", delta_arrow="off")

st.subheader("The questions")
shipped = checkpoints.manifest()
rows, pages = [], Path(__file__).parent
mine = ui.store().list(owner=who.owner)
for q in QUESTIONS:
    runs = [r for r in mine if r["spec"].get("question", "") in q.parts and r["spec"].get("owner", "") == who.owner]
    done = [r for r in runs if r["status"].get("state") == "done"]
    units = [get(k).unit for k in q.parts if get(k).reference or get(k).students]   # one per number shown
    rows.append({"question": q.title, "what you do": q.what,
                 "reference (set 1)": reference_text(q),
                 "unit": " / ".join(units if len(set(units)) > 1 else units[:1]),
                 "page": "ready" if (pages / q.page).exists() else "coming",
                 "pretrained": sum(e["question"] in q.parts for e in shipped),
                 "your runs (done)": f"{len(runs)} ({len(done)})"})
st.table(rows, hide_index=True)   # a table that wraps its text: every column in view at any width
st.caption("Pages on the left. Every run is recorded under `runs/` — the Runs page lists, compares, cancels and deletes "
           "yours (and shows the runs your instructor pinned for the class).")
