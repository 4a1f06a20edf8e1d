"""Q6 — one transformer over caption words and image tokens: captions for pictures, pictures for captions."""
import numpy as np
import streamlit as st

from core import sources, viz
from core.questions import get
from core.questions import q4, q6
import ui

ui.in_app()

q = get("q6")
DATASET = "mnist-v2"
LO, HI = q.students[DATASET]

st.title("🖼️ Q6 · Text + image")
st.markdown(
    "One causal transformer reads **caption words and image tokens in one sequence**, so the same model writes "
    "captions for pictures and draws pictures for captions. Images are the 49 tokens of the Q4 tokenizer "
    "(`vqvae-mnist-v2`); each caption word is one token; two special tokens mark where a modality ends.\n\n"
    "- **Sequences** (58 tokens), drawn 50/50 for every training sequence:\n"
    "  `<bos> <end of image> w1 … w6 <end of text> c1 … c49` (text first) or "
    "`<bos> <end of text> c1 … c49 <end of image> w1 … w6` (image first). The end token after `<bos>` says which "
    "modality comes next.\n"
    "- **Loss** in **nats per predicted token**: the mean cross-entropy over all **57 tokens after `<bos>`** (the "
    "opening end token, the 6 words, the other end token and the 49 image codes). The test loss scores every test "
    "pair in **both** layouts. A model that knows nothing scores ln(vocabulary) ≈ ln 1058 ≈ 6.96; students reached "
    f"{LO}–{HI} on the course's data (ours differs: solid colours, our own tokenizer).\n"
    "- **Sampling** keeps each modality in its place: the first token is one of the two end tokens; after "
    "`<end of image>` exactly six words, then `<end of text>`; after `<end of text>` exactly 49 image codes. "
    "Captions for an image: give `<bos> <end of text>` + its 49 codes + `<end of image>`, let it write six words. "
    "An image for a caption: give `<bos> <end of image>` + the words + `<end of text>`, let it draw 49 codes.")

try:
    _, test, _, test_caps = ui.load_data(DATASET)
except Exception as e:  # MNIST not fetched yet: say how to get it
    st.error(f"Could not load {DATASET}: {ui.plain(e)}")
    st.stop()
with st.expander("What the data look like (the first nine test pairs)"):
    ui.pairs_grid(test[:9], test_caps[:9])
    st.caption(q6.CAPTION_RULE)

# ------------------------------------------------------------------------------------------------------- train
st.subheader("Train")
opts = q4.available_tokenizers(DATASET, owner=ui.viewer())
if not opts:
    st.info("No tokenizer for mnist-v2 yet: train one on the Q4 page's (a) Tokenizer tab first.", icon="👈")
else:
    ui.train_panel(ui.with_choices(q, "tokenizer", [v for v, _ in opts]), DATASET)


def _panel_from_run(run_id, art):
    imgs = np.load(ui.store().dir(run_id) / art["npy"])
    ui.pairs_grid(imgs, art.get("captions") or [""] * len(imgs))


def _agreement(res: dict):
    c1, c2, c3 = st.columns(3)
    c1.metric("caption words right", f"{res['caption_words_true']:.1%}",
              help="captions written for test images: the share of the 5 judged words (the digit, both colour "
                   "words, both modifiers) that are the words of the image's own caption, in their place (each "
                   "colour has one name, so a word is right only as that name says it)")
    if "images_match" in res:
        c2.metric("images matching their caption", f"{res['images_match']:.1%}",
                  help="images drawn for test captions: the digit (read by a small classifier) and both colours "
                       "(read from the pixels) are the ones the caption names")
    if res.get("digit_classifier_accuracy") is not None:
        c3.metric("digit classifier accuracy", f"{res['digit_classifier_accuracy']:.1%}",
                  help="the classifier that reads the digit, on the mnist-v2 test images")
    if res.get("by_word"):
        st.caption("Caption words right, by word: " + ", ".join(f"{k} {v:.1%}" for k, v in res["by_word"].items())
                   + ". The weakest word is what the model has not yet learned to read off the image.")


def extra(view, status):
    meta = view.latest.get("meta")
    if meta:
        st.caption(f"Vocabulary: {meta['n_embeddings']} image codes + {meta['n_words']} words + 3 special tokens = "
                   f"{meta['vocab_size']}; an untrained model scores ln {meta['vocab_size']} = {meta['ln_vocab']:.2f} "
                   f"nats/token. {meta['train_pairs']} training pairs.")
    res = status.get("result")
    if res:
        ui.result_metrics(res, None, ("students' range", f"{LO}–{HI}"), unit="nats/token")
        _agreement({**res, **(res.get("metrics") or {})})
        tabs = st.tabs(["captions for images", "images for captions", "unconditional"])
        for tab, name in zip(tabs, q6.PANELS):
            art = view.artifact(f"samples_{name}")
            with tab:
                if art:
                    _panel_from_run(view.run_id, art)
        return
    caps, imgs = view.artifact("captions_epoch"), view.artifact("images_epoch")
    if not (caps or imgs):
        if status.get("state") in ("queued", "running"):
            st.caption("After every epoch: captions for nine test images and images for nine test captions.")
        return
    left, right = st.columns(2)
    with left:
        if caps:
            st.markdown(f"**Captions written after epoch {caps['epoch']}**")
            _panel_from_run(view.run_id, caps)
    with right:
        if imgs:
            st.markdown(f"**Images drawn after epoch {imgs['epoch']}** for these captions")
            _panel_from_run(view.run_id, imgs)


ui.run_monitor(ui.current_run(q, DATASET), extra=extra, unit="nats/token", key="q6")

# ------------------------------------------------------------------------------------------------------- use a model
st.subheader("Use a trained model")
picked = ui.model_picker("q6", DATASET, key="q6:source", then=lambda model, config, root: (
                             model, q6.vocab_from_config(config), config,
                             q4.load_tokenizer(config["tokenizer"], "cpu", runs_root=root)),
                         empty=f"No trained model yet: train one above (the quick preset takes "
                               f"{ui.quick_time('q6', short=True)}).")
if picked is None:
    st.stop()
source, (model, vocab, config, tok) = picked
if source.startswith("pretrained:"):
    entry = next(e for e in sources.shipped("q6", DATASET) if f"pretrained:{e['name']}" == source)
    m = entry.get("metrics") or {}
    if m:
        _agreement(m)
        cooler = "; ".join(f"at temperature {t}: {v['caption_words_true']:.1%} of caption words right, "
                           f"{v['images_match']:.1%} of images matching" for t, v in m.get("by_temperature", {}).items())
        st.caption(f"Measured on {m.get('agreement_pairs', q6.N_AGREE)} test pairs at temperature "
                   f"{m.get('temperature', 1.0):g}" + (f"; {cooler}" if cooler else "") + "."
                   + (f" For scale: the tokenizer's own reconstructions of those test images match "
                      f"{m['images_match_of_reconstructions']:.1%} (real digits through this tokenizer; drawn images "
                      "can score higher, being cleaner, more typical digits)."
                      if "images_match_of_reconstructions" in m else ""))

c1, c2 = st.columns(2)
temperature = c1.slider("temperature", 0.0, 2.0, 1.0, 0.1, key="q6:temp",
                        help="divides the logits: lower = the most likely words and codes, 0 = always the most likely")
seed = int(c2.number_input("seed", 0, 2**31 - 1, 0, 1, key="q6:seed"))
classifier, _ = q6.load_digit_classifier()
USES = ["🖼️→📝 captions for images", "📝→🖼️ images for captions", "🎲 unconditional"]
use = st.segmented_control("Use it for", USES, default=USES[0], required=True, key="q6:use") or USES[0]

if use == USES[0]:
    picked = st.multiselect("Test images (up to 9; none = the first nine)", list(range(len(test))), default=[],
                            max_selections=9, key="q6:images", format_func=lambda i: f"#{i} · {test_caps[i]}")
    idx = picked or list(range(9))
    setting = (source, tuple(idx), seed, temperature)
    if st.button("Write captions", type="primary", key="q6:go:img"):
        codes = q4.tokenize(tok, test[idx])
        with ui.server_work("writing captions"):
            ui.keep("q6:img", setting, q6.captions_for(model, vocab, codes, seed, temperature))
    said = ui.kept("q6:img", setting)
    if said is not None:
        marks = [f"{n}/{k}" for n, k in (q6.words_true(s, test_caps[i]) for s, i in zip(said, idx))]
        ui.pairs_grid(test[idx], [f"{s}  (truth: {test_caps[i]})" for s, i in zip(said, idx)], marks=marks)
        st.caption("Each caption starts with how many of its 5 judged words (the digit, both colour words, both "
                   "modifiers) are the true caption's words in their place.")

elif use == USES[1]:
    typed = st.text_area("Captions, one per line (up to 9)", "\n".join(test_caps[:9]), height=220,
                         max_chars=1000, key="q6:captions")
    lines = [ln.strip() for ln in typed.splitlines() if ln.strip()][:9]
    good, bad = q6.readable(vocab, lines)   # each line is drawn or refused alone
    setting = (source, tuple(good), seed, temperature)
    clicked = st.button("Draw images", type="primary", key="q6:go:txt")
    if clicked and good:
        with ui.server_work("drawing images"):
            ui.keep("q6:txt", setting, q4.to_images(tok.decode(q6.codes_for(model, vocab, good, seed, temperature))))
    drawn = ui.kept("q6:txt", setting)
    for line, why in bad if clicked or drawn is not None else ():
        st.error(f"Not drawn: “{line}”: {ui.plain(why)}", icon="⚠️")
    for line in good if clicked or drawn is not None else ():
        if (other := q6.renamed_caption(line)) != line:
            st.info(f"“{line}” draws the colours the data call “{other}” (2 bits per channel): the model learned "
                    "each colour under that one name.", icon="ℹ️")
    if drawn is not None:
        marks = None
        if classifier is not None:
            ok = q6.images_match(drawn, good, classifier)
            marks = ["✓" if m else "✗" for m in ok]
        ui.pairs_grid(drawn, good, marks=marks)
        if marks:
            st.caption("✓: the digit (read by the classifier) and both colours (read from the pixels) match.")

else:
    setting = (source, seed, temperature)
    if st.button("Draw nine pairs", type="primary", key="q6:go:unc"):
        with ui.server_work("drawing pairs"):
            ui.keep("q6:unc", setting, q6.unconditional(model, vocab, 9, seed, temperature))
    if ui.kept("q6:unc", setting) is not None:
        codes, caps, text_first = ui.kept("q6:unc", setting)
        ui.pairs_grid(q4.to_images(tok.decode(codes)),
                      [f"{c}  ({'text' if tf else 'image'} first)" for c, tf in zip(caps, text_first)])

# ------------------------------------------------------------------------------------------------------- next token
st.subheader("Next token, step by step")
st.markdown("One token at a time through the same cached sampler and the same modality rule: the bars are the "
            "probabilities the sampler draws from (tokens of the wrong modality have probability 0), reshaped live "
            "by the temperature and top-k.")
c1, c2 = st.columns(2)
mode = c1.radio("Write", ["a caption for a test image", "an image for a test caption"], key="q6:nt:mode")
pick = int(c2.number_input("test pair", 0, len(test) - 1, 0, key="q6:nt:pair"))


def _nt_label(i):
    if i < vocab.n_codes:
        return f"code {i}"
    return {vocab.eot: "<end of text>", vocab.eoi: "<end of image>", vocab.bos: "<bos>"}.get(i, vocab.decode([i]))


def _nt_stepper():
    if mode.startswith("a caption"):
        codes = q4.tokenize(tok, test[pick:pick + 1])[0].tolist()
        prefix = [vocab.bos, vocab.eot, *codes, vocab.eoi]
    else:
        prefix = [vocab.bos, vocab.eoi, *vocab.encode(test_caps[pick]), vocab.eot]
    return q6.stepper(model, vocab, prefix)


def _nt_render(stepper, chosen):
    new = stepper.tokens[stepper.t0:]
    if mode.startswith("a caption"):
        st.image(np.kron(viz.to_rgb(test[pick:pick + 1], 4)[0], np.ones((6, 6, 1), np.uint8)),
                 caption=f"truth: {test_caps[pick]}")
        written = " ".join(vocab.decode([t]) for t in new if vocab.n_codes <= t < vocab.eot)
        st.markdown((f"**{written}** " if written else "") + ("" if chosen is None else
                    f"<span style='color:#d62728'>{_nt_label(chosen)}</span>"), unsafe_allow_html=True)
    else:
        st.markdown(f"**{test_caps[pick]}**")
        codes = [t for t in new if t < vocab.n_codes]
        if len(codes) == q6.TOKENS:
            img = q4.to_images(tok.decode(np.array(codes).reshape(1, 7, 7)))[0]
            st.image(np.kron(viz.to_rgb(img[None], 4)[0], np.ones((6, 6, 1), np.uint8)), caption="decoded")
        else:
            grid = np.full(q6.TOKENS, -1)
            grid[:len(codes)] = codes
            pic = q4.token_picture(np.maximum(grid, 0).reshape(1, 7, 7), vocab.n_codes, cell=24)[0]
            cells = pic.reshape(7, 24, 7, 24, 3).transpose(0, 2, 1, 3, 4)   # (row, col, 24, 24, 3), a view
            cells[(grid < 0).reshape(7, 7)] = 225                             # not drawn yet: grey
            st.image(pic, caption=f"{len(codes)} of 49 codes (one colour per code; decoded when all are drawn)")


ui.next_token_panel(f"q6:{source}:{mode}:{pick}", _nt_stepper, _nt_label, _nt_render)
