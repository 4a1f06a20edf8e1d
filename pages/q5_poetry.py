"""Q5 — a character-level transformer that writes poems: train it live, watch it learn to spell, then prompt it."""
import html
import math

import streamlit as st

from core import sources
from core.questions import get, q5
from core.questions.q5 import generate, prepare_prompt, stepper as q5_stepper, tokenizer_from_config
import ui

ui.in_app()

q = get("q5")
MAX_LENGTH = 2000   # characters a learner may ask for
COURSE_SET = q5.on_course_set()   # the course's own poems, or (by default) another corpus


def _context(run_id):
    """The window length of the run shown below, else of the preset the form opens with."""
    try:
        if run_id:
            return int(ui.store().spec(run_id).hparams["context"])
    except (KeyError, TypeError, ValueError):   # a spec without it
        pass
    return q.preset(q.default_preset(ui.device()))["context"]


st.title("✒️ Q5 · A character-level poet")
try:
    train, test = ui.load_data("poetry")
except Exception as e:  # not fetched yet: say how to get it
    train = test = None
    missing = e
run_id = ui.current_run(q, "poetry")
st.markdown(
    "The same causal transformer as Q3, but its tokens are **characters**. The vocabulary is every distinct "
    "character of the training poems plus two special tokens: every poem is written as "
    "`<bos>` poem `<eos>`, so the model learns where a poem starts and when to stop.\n\n"
    + q5.intro(_context(run_id), len(test) if train else None, COURSE_SET, len(train) + len(test) if train else None))
if train is None:
    st.error(f"The poetry set is not available: {ui.plain(missing)}")
    st.stop()
chars = sorted(set("".join(train)))
st.caption(f"{len(train)} training poems ({sum(map(len, train)):,} characters) and {len(test)} test poems · "
           f"{len(chars)} distinct characters + <bos> + <eos> = {len(chars) + 2} tokens · "
           f"uniform guess ln({len(chars) + 2}) = {math.log(len(chars) + 2):.2f} nats/char.")
with st.expander("Read a training poem"):
    st.code(train[0], language=None, wrap_lines=True)


def show_texts(texts, prompt: str = ""):
    """Each sample in a box; the learner's prompt in bold, the model's continuation plain."""
    for t in texts:
        head, tail = (prompt, t[len(prompt):]) if prompt and t.startswith(prompt) else ("", t)
        body = f"<b>{html.escape(head)}</b>{html.escape(tail)}" if head else html.escape(tail)
        st.markdown(f"<div style='white-space:pre-wrap;font-family:Georgia,serif;border-left:3px solid #ccc;"
                    f"padding:0.3em 0.8em;margin-bottom:0.6em'>{body or '<i>(an empty poem: &lt;eos&gt; at once)</i>'}"
                    f"</div>", unsafe_allow_html=True)


# ------------------------------------------------------------------------------------------------------- train
st.subheader("Train")
run_id = ui.train_panel(q, "poetry") or run_id


def extra(view, status):
    texts = [a for a in view.artifacts if a.get("kind") == "text"]
    res = status.get("result")
    if res:
        c1, c2, c3 = st.columns(3)
        c1.metric("final test loss", f"{res['test_loss']:.3f} nats/char",
                  q5.against_students(res["test_loss"], COURSE_SET), delta_color="off", delta_arrow="off")
        c2.metric("bits per character", f"{res['bits_per_dim']:.3f}")
        c3.metric("training time", f"{res['seconds']:.0f} s")
    if not texts:
        if status.get("state") in ("queued", "running"):
            st.caption("Samples appear here after every epoch.")
        return
    latest = texts[-1]
    st.markdown(f"**{'The 5 final samples' if latest.get('final') else 'Samples after epoch ' + str(latest['epoch'])}**"
                f" (up to {q5.FINAL_LEN} characters, cut at <eos>)")
    show_texts(latest["texts"])
    if len(texts) > 1:
        with st.expander("Samples from every epoch"):
            for a in reversed(texts[:-1]):
                st.markdown(f"*after epoch {a['epoch']}*")
                show_texts(a["texts"])


ui.run_monitor(run_id, extra=extra, unit="nats/char", key="q5")

# ------------------------------------------------------------------------------------------------------- sample
st.subheader("Write with a trained model")
if not sources.shipped("q5", "poetry"):
    st.caption("No pretrained Q5 checkpoint is shipped yet.")
picked = ui.model_picker("q5", "poetry", key="q5:source",
                         then=lambda model, config, _: (model, tokenizer_from_config(config), config),
                         empty=f"No trained model yet: train one above (the quick preset takes "
                               f"{ui.quick_time('q5', short=True)}), then come back here to write with it.")
if picked is None:
    st.stop()
source, (model, tok, config) = picked
T = model.config.block_size

with st.form("q5:sample"):
    prompt = st.text_area("Your line (the model continues it; leave empty for a poem from scratch)", key="q5:prompt",
                          placeholder="Shall I compare thee to a summer's day?", height=80, max_chars=2000)
    c1, c2, c3, c4, c5 = st.columns(5)
    temperature = c1.number_input("temperature", 0.0, 5.0, 0.8, 0.1, key="q5:temp",
                                  help="divides the logits: < 1 safer and more repetitive, > 1 wilder; 0 = always "
                                       "the most likely character")
    top_k = c2.number_input("top-k (0 = off)", 0, tok.vocab_size, 0, 1, key="q5:topk",
                            help="keep only the k most likely characters at each step")
    length = c3.number_input("length", value=128, step=8, key="q5:length",
                             help=f"new characters at most, 1 to {MAX_LENGTH} (it stops at <eos>); past {T} the "
                                  "window slides")
    n = c4.number_input("samples", 1, 20, 5, 1, key="q5:n")
    seed = c5.number_input("seed", 0, 2**31 - 1, 0, 1, key="q5:seed")
    go = st.form_submit_button("Write", type="primary", icon="✒️")

setting = (source, prompt, float(temperature), int(top_k), int(length), int(n), int(seed))
if go and not 1 <= length <= MAX_LENGTH:
    st.error(f"Length must be between 1 and {MAX_LENGTH} characters (got {length}); nothing was written.", icon="⚠️")
elif go:
    bar = st.progress(0.0, text=f"Writing {n} × up to {length} characters…")
    with ui.server_work("writing poems"):
        ui.keep("q5:poems", setting, generate(
            model, tok, int(n), int(length), prompt=prompt, temperature=float(temperature), top_k=int(top_k) or None,
            seed=int(seed), on_step=lambda i: bar.progress((i + 1) / length,
                                                           text=f"character {i + 1} of up to {length}")))
    bar.empty()
if ui.kept("q5:poems", setting) is not None:   # written now or before with these settings: shown on every rerun
    texts, notices = ui.kept("q5:poems", setting)
    for msg in notices:
        st.warning(msg, icon="ℹ️")
    show_texts(texts, tok.decode(prepare_prompt(tok, prompt, T)[0]))
    st.caption(f"Context {T} tokens · vocabulary {tok.vocab_size} · temperature {temperature:g}"
               f"{f' · top-k {top_k}' if top_k else ''}.")

# ------------------------------------------------------------------------------------------------------- next token
st.subheader("Next character, step by step")
st.markdown("The same sampler, one character at a time: the bars are the model's probabilities for the next "
            "character — exactly what the sampler draws from — and the temperature and top-k reshape them as you "
            "move the sliders. The highlighted bar is the character a draw picks.")
start = st.text_input("Start from", "", key="q5:nt:prompt", placeholder="(empty: a poem from <bos>)")
NAMES = {"\n": "⏎", " ": "␣"}


def _label(i):
    return "<bos>" if i == tok.bos else "<eos>" if i == tok.eos else NAMES.get(tok.chars[i - 2], tok.chars[i - 2])


def _render(stepper, chosen):
    text = tok.decode(stepper.tokens[1:], stop_at_eos=False).replace("\n", "⏎\n")
    nxt = "" if chosen is None else _label(chosen)
    st.markdown(f"<div style='white-space:pre-wrap;font-family:Georgia,serif;border-left:3px solid #ccc;"
                f"padding:0.3em 0.8em'>{html.escape(text)}<span style='background:#ffe8cc;color:#d62728'>"
                f"{html.escape(nxt)}</span></div>", unsafe_allow_html=True)
    st.caption(f"{stepper.step} characters written; the highlighted one is next.")


ui.next_token_panel(f"q5:{source}:{start}", lambda: q5_stepper(model, tok, start), _label, _render)
