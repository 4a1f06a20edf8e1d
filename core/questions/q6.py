"""Q6 — one transformer over caption words and VQ image tokens: captions for pictures, pictures for captions.

Data: `mnist-v2` (a solid-colour digit on a solid background) with its 6-word captions, e.g. "light green five on
dark magenta"; images become 49 tokens with Q4's tokenizer ("pretrained" = the shipped `vqvae-mnist-v2`).

Vocabulary (`Vocab`): ids 0..K-1 are the tokenizer's codes, then one id per distinct caption word of the training
captions (sorted), then <end of text>, <end of image> and <bos>. Every training sequence has 58 tokens, in one of
two layouts, drawn 50/50 afresh for every sequence of every minibatch:

    text first:  <bos> <end of image> w1 .. w6 <end of text> c1 .. c49
    image first: <bos> <end of text> c1 .. c49 <end of image> w1 .. w6

(the end token after <bos> announces which modality comes next). Loss: cross-entropy in nats per predicted token,
averaged over all 57 tokens after <bos> (the opening end token, the 6 words, the other end token, the 49 codes).
The test loss scores every test pair in BOTH layouts (the exact expectation of the 50/50 draw, no sampling noise).

Sampling goes through the shared sampler (KV cache on) with one logits hook, `constrain`: the first token is one
of the two end tokens; after <end of image> come exactly six words, then <end of text>; after <end of text>
exactly 49 image codes, then <end of image>. So a sample never mixes modalities, captions have six words and
images 49 codes, from any model, trained or not.

Agreement (the lesson, measured): for captions drawn for test images, the share of caption words true of the image
(`words_true`); for images drawn for test captions, the share whose digit (by a small classifier trained on the
v2 training images, core.models.digits) and both colours (read from the pixels) match the caption.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from .. import sources
from ..context import RunContext, epoch_name
from ..data.colour_mnist import COLOUR_NAMES, DIGITS, MODIFIERS, TABLE
from ..models.transformer import Transformer, sample
from ..train import TrainConfig, fit, stop_check, subset_indices
from . import q4
from .base import Data, Field, Question, Trained, transformer_fields

DATASETS = ("mnist-v2",)
WORDS = 6              # every caption has six words
TOKENS = q4.TOKENS     # 49 image tokens (7x7)
SEQ_LEN = 1 + 1 + WORDS + 1 + TOKENS  # 58: <bos>, an end token, the text, the other end token, the image
N_PANEL = 9            # the deliverable: 3x3 pairs per panel, three panels:
PANELS = ("img_conditioned", "text_conditioned", "unconditional")
N_AGREE = 1000         # test pairs each agreement number is measured on
DIGIT_CLASSIFIER = "digits-mnist-v2"


class UnknownWords(ValueError):
    """A caption the model cannot read: words outside its vocabulary, or not six words. Says which are allowed."""


# ------------------------------------------------------------------------------------------------ vocabulary
@dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]  # the caption words, sorted; word i has id n_codes + i
    n_codes: int            # K image codes, ids 0..K-1

    @classmethod
    def from_captions(cls, captions, n_codes: int) -> "Vocab":
        return cls(tuple(sorted({w for c in captions for w in split(c)})), int(n_codes))

    @property
    def eot(self) -> int:  # <end of text>
        return self.n_codes + len(self.words)

    @property
    def eoi(self) -> int:  # <end of image>
        return self.eot + 1

    @property
    def bos(self) -> int:
        return self.eot + 2

    @property
    def size(self) -> int:
        return self.eot + 3

    def is_word(self, ids):
        ids = torch.as_tensor(ids)
        return (ids >= self.n_codes) & (ids < self.eot)

    def encode(self, caption: str) -> list[int]:
        """A caption -> its six word ids; UnknownWords (listing the allowed words) for anything else."""
        words = split(caption)
        index = {w: i for i, w in enumerate(self.words)}
        unknown = [w for w in words if w not in index]
        if unknown:
            raise UnknownWords(f"not in the vocabulary: {', '.join(repr(w) for w in unknown)}. The model knows these "
                               f"{len(self.words)} words: {', '.join(self.words)}")
        if len(words) != WORDS:
            raise UnknownWords(f"a caption has exactly {WORDS} words (e.g. 'light green five on dark magenta'); "
                               f"got {len(words)}")
        return [self.n_codes + index[w] for w in words]

    def decode(self, ids) -> str:
        return " ".join(self.words[int(i) - self.n_codes] if self.n_codes <= int(i) < self.eot else f"<{int(i)}>"
                        for i in ids)

    def config(self) -> dict:
        return {"words": list(self.words), "n_embeddings": self.n_codes}


def split(caption: str) -> list[str]:
    return re.findall(r"[a-z]+", str(caption).lower())


def vocab_from_config(config: dict) -> Vocab:
    return Vocab(tuple(config["words"]), int(config["n_embeddings"]))


# ------------------------------------------------------------------------------------------------ sequences
def sequences(vocab: Vocab, codes, words, text_first) -> torch.Tensor:
    """codes (N,49), word ids (N,6), text_first (N,) bool (or one bool) -> (N,58) long token sequences."""
    codes = torch.as_tensor(np.asarray(codes), dtype=torch.long).reshape(-1, TOKENS)
    words = torch.as_tensor(np.asarray(words), dtype=torch.long).reshape(-1, WORDS)
    n = len(codes)
    col = lambda v: torch.full((n, 1), v, dtype=torch.long)  # noqa: E731
    text = torch.cat([col(vocab.bos), col(vocab.eoi), words, col(vocab.eot), codes], 1)
    image = torch.cat([col(vocab.bos), col(vocab.eot), codes, col(vocab.eoi), words], 1)
    tf = torch.as_tensor(text_first, dtype=torch.bool).expand(n) if np.ndim(text_first) == 0 else \
        torch.as_tensor(np.asarray(text_first), dtype=torch.bool)
    return torch.where(tf[:, None], text, image)


def pair_layouts(vocab: Vocab, codes, words) -> torch.Tensor:
    """(N,2,58): every pair in both layouts (0 = text first, 1 = image first)."""
    return torch.stack([sequences(vocab, codes, words, True), sequences(vocab, codes, words, False)], 1)


def loss_fn(model, both):
    """both (B,2,58). Training: one layout per sequence, drawn 50/50 (torch's generator, seeded by fit); evaluation:
    both layouts of every pair. -> mean nats per predicted token (all 57 after <bos>)."""
    if model.training:
        pick = torch.randint(0, 2, (len(both),), device=both.device)
        seq = both[torch.arange(len(both), device=both.device), pick]
    else:
        seq = both.reshape(-1, SEQ_LEN)
    return model.loss(seq), len(both)


def split_sequence(vocab: Vocab, seq) -> tuple[np.ndarray, list[int]]:
    """A full 58-token sequence (either layout) -> (49 codes, 6 word ids)."""
    seq = [int(t) for t in seq]
    if seq[1] == vocab.eoi:
        return np.array(seq[9:9 + TOKENS]), seq[2:8]
    return np.array(seq[2:2 + TOKENS]), seq[3 + TOKENS:3 + TOKENS + WORDS]


# ------------------------------------------------------------------------------------------------ constrained sampling
def allowed(vocab: Vocab, tokens: torch.Tensor) -> torch.Tensor:
    """tokens so far (n, t) -> (n, V) bool: what may come at position t. The layout is fixed by the end token after
    <bos>: text first -> 6 words, <end of text>, 49 codes; image first -> 49 codes, <end of image>, 6 words."""
    n, t = tokens.shape
    mask = torch.zeros(n, vocab.size, dtype=torch.bool, device=tokens.device)
    if t == 1:
        mask[:, [vocab.eot, vocab.eoi]] = True
        return mask
    if t >= SEQ_LEN:
        raise ValueError(f"a Q6 sequence has {SEQ_LEN} tokens; nothing comes at position {t}")
    first = tokens[:, 1]
    if not bool(((first == vocab.eot) | (first == vocab.eoi)).all()):
        raise ValueError("the token after <bos> must be <end of text> or <end of image>")
    words = slice(vocab.n_codes, vocab.eot)
    codes = slice(0, vocab.n_codes)
    tf = first == vocab.eoi  # text first
    if 2 <= t < 2 + WORDS:
        mask[tf, words] = True
    elif t == 2 + WORDS:
        mask[tf, vocab.eot] = True
    else:
        mask[tf, codes] = True
    imf = ~tf
    if t < 2 + TOKENS:
        mask[imf, codes] = True
    elif t == 2 + TOKENS:
        mask[imf, vocab.eoi] = True
    else:
        mask[imf, words] = True
    return mask


def constrain(vocab: Vocab):
    """The logits hook that keeps every sample in the right modality (see `allowed`)."""
    def hook(step, tokens, logits):
        return logits.masked_fill(~allowed(vocab, tokens), float("-inf"))
    return hook


def _generate(model: Transformer, vocab: Vocab, prefix, n: int, seed: int, temperature: float,
              step_callback=None) -> torch.Tensor:
    device = next(model.parameters()).device
    prefix = torch.as_tensor(prefix, dtype=torch.long, device=device)
    gen = torch.Generator().manual_seed(int(seed))
    t0 = prefix.shape[-1]
    return sample(model, n, SEQ_LEN - t0, prefix=prefix, generator=gen, temperature=temperature,
                  logits_hook=constrain(vocab), step_callback=step_callback)


def _chunks(n: int, size: int = 500):
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def _complete(model, vocab: Vocab, opener: int, given, closer: int, seed: int, temperature: float,
              step_callback=None) -> torch.Tensor:
    """<bos> opener given closer, then whatever the sampler adds up to 58 tokens; in chunks of 500 -> (n, 58).
    step_callback: the sampler's (e.g. a cancel check)."""
    given = torch.as_tensor(np.asarray(given), dtype=torch.long)
    out = []
    for a, b in _chunks(len(given)):
        n = b - a
        prefix = torch.cat([torch.tensor([[vocab.bos, opener]]).expand(n, -1), given[a:b],
                            torch.full((n, 1), closer)], 1)
        out.append(_generate(model, vocab, prefix, n, seed + a, temperature, step_callback).cpu())
    return torch.cat(out)


def captions_for(model, vocab: Vocab, codes, seed: int = 0, temperature: float = 1.0, step_callback=None) -> list[str]:
    """Image codes (n,49) (or (n,7,7)) -> n captions drawn after <bos> <end of text> image <end of image>."""
    seqs = _complete(model, vocab, vocab.eot, np.asarray(codes).reshape(-1, TOKENS), vocab.eoi, seed, temperature,
                     step_callback)
    return [vocab.decode(s[-WORDS:]) for s in seqs]


def codes_for(model, vocab: Vocab, captions, seed: int = 0, temperature: float = 1.0, step_callback=None) -> np.ndarray:
    """Captions (n) -> image codes (n,7,7) drawn after <bos> <end of image> caption <end of text>. Raises
    UnknownWords before anything runs if a caption has words outside the vocabulary."""
    ids = [vocab.encode(c) for c in captions]
    seqs = _complete(model, vocab, vocab.eoi, np.reshape(ids, (-1, WORDS)), vocab.eot, seed, temperature, step_callback)
    return seqs[:, -TOKENS:].numpy().reshape(-1, 7, 7)


def readable(vocab: Vocab, captions) -> tuple[list[str], list[tuple[str, str]]]:
    """Captions the model can read, and (caption, why not) for each one it cannot: each line stands alone."""
    ok, bad = [], []
    for c in captions:
        try:
            vocab.encode(c)
            ok.append(c)
        except UnknownWords as e:
            bad.append((c, str(e)))
    return ok, bad


def unconditional(model, vocab: Vocab, n: int, seed: int = 0, temperature: float = 1.0, step_callback=None):
    """n pairs from <bos> alone -> (codes (n,7,7), captions, text_first (n,) bool: which modality came first)."""
    seqs = _generate(model, vocab, [vocab.bos], n, seed, temperature, step_callback).cpu()
    parts = [split_sequence(vocab, s) for s in seqs]
    return (np.stack([c for c, _ in parts]).reshape(-1, 7, 7), [vocab.decode(w) for _, w in parts],
            (seqs[:, 1] == vocab.eoi).numpy())


def stepper(model, vocab: Vocab, prefix):
    """Writing one token at a time under the same modality rule (`constrain`), with the sampler's own
    probabilities: a core.nexttoken.Stepper after `prefix` (e.g. <bos> <end of text> 49 codes <end of image>)."""
    from ..nexttoken import Stepper

    return Stepper(model, prefix, logits_hook=constrain(vocab))


# ------------------------------------------------------------------------------------------------ agreement
def parse(caption: str) -> dict | None:
    """"<modifier> <colour> <digit> on <modifier> <colour>" -> {fg: (m, c), digit, bg: (m, c)}; None if it does not
    have that form."""
    w = split(caption)
    if (len(w) != WORDS or w[0] not in MODIFIERS or w[1] not in COLOUR_NAMES or w[2] not in DIGITS or w[3] != "on"
            or w[4] not in MODIFIERS or w[5] not in COLOUR_NAMES):
        return None
    return {"fg": (w[0], w[1]), "digit": DIGITS.index(w[2]), "bg": (w[4], w[5])}


def rgb(modifier: str, colour: str) -> tuple:
    return tuple(int(v) for v in TABLE[MODIFIERS.index(modifier), COLOUR_NAMES.index(colour)])


WORD_PARTS = ("digit", "digit colour", "digit modifier", "background colour", "background modifier")


def word_hits(said: str, truth: str) -> list[bool]:
    """Which of the 5 judged words (WORD_PARTS) of caption `said` are true of the image that `truth` describes: the
    digit, and for the digit and the background a colour word and a modifier. A word counts as true when it
    describes the same pixels as the generator's own caption: "plain" and "normal" are the same colour, "dark white"
    is the pixels of "plain gray", so the colour word is true if SOME modifier makes it the image's colour, and the
    modifier is true if, with the said colour or the true one, it gives the image's colour."""
    t = parse(truth)
    if t is None:
        raise ValueError(f"not a generator caption: {truth!r}")
    w = split(said) + [""] * WORDS
    hits = [w[2] == DIGITS[t["digit"]]]
    for mi, ci, part in ((0, 1, "fg"), (4, 5, "bg")):
        target = rgb(*t[part])
        m, c = w[mi], w[ci]
        hits.append(c in COLOUR_NAMES and any(rgb(mm, c) == target for mm in MODIFIERS))
        hits.append(m in MODIFIERS and ((c in COLOUR_NAMES and rgb(m, c) == target) or rgb(m, t[part][1]) == target))
    return hits


def words_true(said: str, truth: str) -> tuple[int, int]:
    """(how many, of the 5 judged) words of caption `said` are true of the image that `truth` describes
    (see word_hits)."""
    return sum(word_hits(said, truth)), WORDS - 1


def read_colours(image, share: float = 0.3) -> tuple[tuple, tuple]:
    """(foreground, background) RGB of a 28x28x3 image in 0..3. The background is the most common colour. The
    foreground is, among the other colours at least `share` as common as the most common of them, the one
    farthest from the background: a decoded image blends digit and background at the stroke edges, and those
    blends lie between the two (on the tokenizer's reconstructions of the test images this reads both colours
    right for ~95%; the second most common colour alone, for ~85%)."""
    x = np.clip(np.rint(np.asarray(image)), 0, 3).astype(int).reshape(-1, 3)
    codes, counts = np.unique(x[:, 0] * 16 + x[:, 1] * 4 + x[:, 2], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    codes, counts = codes[order], counts[order]
    rgbs = np.stack([codes // 16, codes // 4 % 4, codes % 4], 1)
    bg = rgbs[0]
    if len(codes) == 1:
        return tuple(int(v) for v in bg), tuple(int(v) for v in bg)
    cand = [i for i in range(1, len(codes)) if counts[i] >= share * counts[1]]
    fg = rgbs[max(cand, key=lambda i: (np.abs(rgbs[i] - bg).sum(), counts[i]))]
    return tuple(int(v) for v in fg), tuple(int(v) for v in bg)


def images_match(images, captions, classifier) -> np.ndarray:
    """(n,) bool: the image's digit (by the classifier) and both colours (read from the pixels) are the caption's.
    A caption not of the generator's form matches nothing."""
    digits = classifier.predict(images)
    out = np.zeros(len(images), bool)
    for i, (img, cap) in enumerate(zip(images, captions)):
        p = parse(cap)
        if p is None:
            continue
        fg, bg = read_colours(img)
        out[i] = int(digits[i]) == p["digit"] and fg == rgb(*p["fg"]) and bg == rgb(*p["bg"])
    return out


def labels_of(captions) -> np.ndarray:
    """The digit each generator caption names."""
    out = []
    for c in captions:
        p = parse(c)
        if p is None:
            raise ValueError(f"not a generator caption: {c!r}")
        out.append(p["digit"])
    return np.array(out, np.int64)


def train_digit_classifier(images, labels, test_images, test_labels, epochs: int = 2, seed: int = 0, ctx=None):
    """The agreement's digit reader (core.models.digits) trained on (images, labels) -> (model, test accuracy)."""
    from ..models.digits import DigitClassifier, shape_map

    torch.manual_seed(seed)
    model = DigitClassifier()
    x, y = shape_map(images), torch.as_tensor(np.asarray(labels), dtype=torch.long)
    xt, yt = shape_map(test_images), torch.as_tensor(np.asarray(test_labels), dtype=torch.long)
    ce = torch.nn.functional.cross_entropy
    res = fit(model, lambda m, b: ce(m(b[0]), b[1]), (x, y), (xt, yt),
              TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, schedule="cosine", seed=seed), ctx)
    acc = float((model.predict(test_images) == np.asarray(test_labels)).mean())
    return model.eval(), acc, res


def load_digit_classifier(device: str = "cpu"):
    """The shipped digit classifier and its manifest entry (None, None when it is not shipped)."""
    from .. import checkpoints

    if not checkpoints.find(name=DIGIT_CLASSIFIER):
        return None, None
    model, _ = sources.load(f"pretrained:{DIGIT_CLASSIFIER}", device)
    return model, checkpoints.find(name=DIGIT_CLASSIFIER)[0]


class DigitReader(Question):
    """The agreement's digit classifier as a kind of shipped model (core.questions.INSTRUMENTS): no question of its
    own (core.pretrain trains it), but its checkpoint is rebuilt and scored as a question's is."""
    key, title = "digits", "Digit classifier"
    datasets = DATASETS
    unit = "nats"
    model_label = "a digit classifier"

    def rebuild(self, config):
        from ..models.digits import DigitClassifier

        return DigitClassifier(int(config["channels"]), int(config["hidden"]))

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from torch.nn.functional import cross_entropy

        from ..models.digits import shape_map
        from ..train import evaluate

        xy = (shape_map(test), torch.as_tensor(labels_of(loaded[3])))   # the digits the captions name
        return evaluate(model, lambda m, b: cross_entropy(m(b[0]), b[1]), xy, batch_size, device)


DIGIT_READER = DigitReader()


def agreement(model, vocab: Vocab, tokenizer, test_images, test_captions, classifier, n: int = N_AGREE,
              seed: int = 0, temperature: float = 1.0, progress=None, step_callback=None) -> dict:
    """The two agreement fractions on the first n test pairs (see the module doc); step_callback: the sampler's
    (e.g. a cancel check)."""
    progress = progress or (lambda f, m: None)
    n = min(n, len(test_images))
    imgs, caps = q4.check_images(test_images[:n]), list(test_captions[:n])
    progress(0.0, f"captions for {n} test images")
    codes = q4.tokenize(tokenizer, imgs)
    said = captions_for(model, vocab, codes, seed, temperature, step_callback)
    hits = np.array([word_hits(s, t) for s, t in zip(said, caps)])  # (n, 5)
    out = {"caption_words_true": float(hits.mean()), "captions_all_true": float(hits.all(1).mean()),
           "agreement_pairs": n, "by_word": {p: round(float(v), 4) for p, v in zip(WORD_PARTS, hits.mean(0))}}
    if classifier is not None:
        progress(0.5, f"images for {n} test captions")
        drawn = q4.to_images(tokenizer.decode(codes_for(model, vocab, caps, seed, temperature, step_callback)))
        out["images_match"] = float(images_match(drawn, caps, classifier).mean())
    return out


# ------------------------------------------------------------------------------------------------ the question
FIELDS = (
    q4.TOKENIZER_FIELD,
    *transformer_fields(4, epochs=(30, 500), batch=(128, 4096), warmup=1000, lr_min=1e-6,
                        epochs_help="passes over the training pairs",
                        batch_help="sequences of 58 tokens per minibatch"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction", help="share of the training pairs used"),
    Field("samples_per_epoch", 9, 0, 9, label="previews per epoch",
          help="after every epoch: captions for this many test images and images for as many test captions"),
    q4.TEMPERATURE_FIELD,
)
PRESETS = {  # the first is the default on a CPU, homework on a GPU
    "quick": {"d_model": 64, "heads": 4, "layers": 2, "epochs": 3, "batch_size": 64, "lr": 2e-3,
              "warmup_steps": 100, "data_fraction": 0.25},
    "homework": {},  # the course's Q4b transformer: d_model 128, 4 heads, 4 layers, 30 epochs, lr 1e-3
}


def transformer_config(hp: dict, vocab: Vocab) -> dict:
    return {"question": "q6", **vocab.config(), "vocab_size": vocab.size, "block_size": SEQ_LEN,
            "d_model": int(hp["d_model"]), "n_heads": int(hp["heads"]), "n_layers": int(hp["layers"])}


def load_model(source: str, device: str = "cpu", runs_root=None):
    """(Transformer, Vocab, config) of a q6 source; config["tokenizer"] names the tokenizer it was trained with."""
    model, config = sources.load(source, device, runs_root, questions="q6")
    return model, vocab_from_config(config), config


def panel(codes, captions, tokenizer) -> tuple[np.ndarray, list[str]]:
    return q4.to_images(tokenizer.decode(np.asarray(codes).reshape(-1, 7, 7))), list(captions)


class MultimodalQ(Question):
    key, title = "q6", "Text + image transformer"
    source_fields = ("tokenizer",)
    datasets = DATASETS
    fields = FIELDS
    presets = PRESETS
    unit = "nats/token"
    students = {"mnist-v2": (2.45, 3.07)}  # on the course's data (spec.md)
    heading = "Question 6: Causal Transformer — Multimodal — (a) Text and Image Generation"
    numbered_files = False
    quick_seconds = {None: 248}

    memory_fields = ("batch_size", "d_model", "batch size, d_model or layers")

    def check(self, hp, dataset):
        return {**super().check(hp, dataset), **q4.token_model_check(self, hp, dataset)}

    def memory(self, hp, dataset):
        words = len(MODIFIERS) + len(COLOUR_NAMES) + len(DIGITS) + 1   # every caption word, "on" too
        return q4.token_model_memory(hp, dataset, SEQ_LEN - 1, words + 3)   # + <end of text>, <end of image>, <bos>

    def load_data(self, dataset, hp, ctx) -> Data:
        """Images with captions ((images, captions) as train and test) and the tokenizer hp["tokenizer"] names."""
        from .. import data

        xtr, xte, ctr, cte = data.load(dataset)
        found = q4.find_tokenizer(hp["tokenizer"], dataset, ctx.runs_root)
        tok = q4.load_tokenizer(found.source, ctx.device, runs_root=ctx.runs_root)
        ctx.emit("log", msg=f"tokenizer: {found.label} ({tok.n_embeddings} codes)")
        return Data((xtr, ctr), (xte, cte), name=dataset, tokenizer=tok, source=found.source, sha256=found.sha256)

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """data.train / data.test: (images (N,28,28,3) in 0..3, captions); data.tokenizer: any object with
        n_embeddings, quantize and decode. Token arrays are cached in the run folder when the context has one."""
        hp = self.hparams(hp)
        ctx = ctx or RunContext()
        tok = data.tokenizer
        (xtr, ctr), (xte, cte) = data.train, data.test
        if len(xtr) != len(ctr) or len(xte) != len(cte):
            raise ValueError("every image needs its caption: the image and caption counts differ")
        keep = subset_indices(len(xtr), hp["data_fraction"], seed)
        xtr, ctr = q4.check_images(xtr, "training images")[keep], [ctr[i] for i in keep]
        xte = q4.check_images(xte, "test images")
        vocab = Vocab.from_captions(ctr, tok.n_embeddings)
        codes = q4.tokenize_parts(tok, {"train": xtr, "test": xte}, ctx)
        words_tr = np.array([vocab.encode(c) for c in ctr])
        words_te = np.array([vocab.encode(c) for c in cte])  # a test word unseen in training: UnknownWords
        info = {"n_embeddings": tok.n_embeddings, "n_words": len(vocab.words), "vocab_size": vocab.size,
                "ln_vocab": math.log(vocab.size), "train_pairs": len(xtr), "predicted_tokens": SEQ_LEN - 1}
        ctx.emit("meta", **info)

        torch.manual_seed(seed)
        config = {**transformer_config(hp, vocab), "dataset": data.name, "tokenizer": data.source,
                  "tokenizer_sha256": data.sha256}
        model = Transformer.from_config(config)
        n_prev = int(hp["samples_per_epoch"])
        prev_imgs, prev_caps, prev_codes = xte[:n_prev], list(cte[:n_prev]), codes["test"][:n_prev]

        def on_epoch_end(epoch, m):
            if n_prev and ctx.keeps:
                check = stop_check(ctx, f"drawing the epoch {epoch} previews")
                said = captions_for(m, vocab, prev_codes, seed + epoch, hp["temperature"], check)
                ctx.save_images(epoch_name("captions", epoch), prev_imgs, ncols=3, levels=4, epoch=epoch, captions=said)
                drawn, _ = panel(codes_for(m, vocab, prev_caps, seed + epoch, hp["temperature"], check), prev_caps, tok)
                ctx.save_images(epoch_name("images", epoch), drawn, ncols=3, levels=4, epoch=epoch, captions=prev_caps)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          warmup_steps=hp["warmup_steps"], schedule="cosine", seed=seed, device=device)
        res = fit(model, loss_fn, pair_layouts(vocab, codes["train"], words_tr),
                  pair_layouts(vocab, codes["test"], words_te), cfg, ctx, on_epoch_end)
        return Trained(model.eval(), config, res, {**info, "vocab": vocab, "test_codes": codes["test"]})

    def panels(self, trained: Trained, tokenizer, test_images, test_captions, image_prompts=None,
               text_prompts=None, seed: int = 0, temperature: float = 1.0, step_callback=None) -> dict:
        """The three 3x3 deliverables: {name: (images (9,28,28,3) uint8, captions)} for "img_conditioned" (captions
        for the image prompts, default the first nine test images), "text_conditioned" (images for the text
        prompts, default the first nine test captions) and "unconditional"."""
        model, vocab = trained.model, trained.extras["vocab"]
        imgs = q4.check_images(test_images[:N_PANEL] if image_prompts is None else image_prompts, "image prompts")
        texts = list(test_captions[:N_PANEL] if text_prompts is None else text_prompts)
        said = captions_for(model, vocab, q4.tokenize(tokenizer, imgs), seed, temperature, step_callback)
        drawn = codes_for(model, vocab, texts, seed, temperature, step_callback)
        ucodes, ucaps, _ = unconditional(model, vocab, N_PANEL, seed, temperature, step_callback)
        return dict(zip(PANELS, ((imgs, said), panel(drawn, texts, tokenizer), panel(ucodes, ucaps, tokenizer))))

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        ctx.progress(0.0, "drawing the three 3x3 panels")
        (xte, cte), tok = data.test, data.tokenizer
        check = stop_check(ctx, "drawing the final samples")
        for name, (imgs, caps) in self.panels(trained, tok, xte, cte, seed=spec.seed, temperature=hp["temperature"],
                                              step_callback=check).items():
            ctx.save_images(f"samples_{name}", imgs, ncols=3, levels=4, final=True, captions=caps)
        classifier, entry = load_digit_classifier(ctx.device)
        if classifier is None:
            ctx.emit("log", msg=f"no digit classifier shipped ({DIGIT_CLASSIFIER}): images_match not measured")
        agree = agreement(trained.model, trained.extras["vocab"], tok, xte, cte, classifier, seed=spec.seed,
                          temperature=hp["temperature"], progress=lambda f, m: ctx.progress(0.2 + 0.8 * f, m),
                          step_callback=stop_check(ctx, "measuring the agreement"))
        metrics = {**agree, "start_loss": trained.result.test_losses[0], "temperature": hp["temperature"]}
        if entry is not None:
            metrics["digit_classifier_accuracy"] = entry["metrics"]["accuracy"]
        info = {k: v for k, v in trained.extras.items() if k not in ("vocab", "test_codes")}
        return {**self.summary(trained), "tokenizer": data.source.replace(":", " ", 1), **info, **agree,
                "metrics": metrics}

    def rebuild(self, config):
        return Transformer.from_config(config)

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ..train import evaluate

        tok = q4.load_tokenizer(config["tokenizer"], device)
        vocab = vocab_from_config(config)
        both = pair_layouts(vocab, q4.tokenize(tok, test), [vocab.encode(c) for c in loaded[3]])
        return evaluate(model, loss_fn, both, batch_size, device)

    # -- the write-up: the train plot and the three 3x3 panels of pairs
    def figure_names(self, dataset):
        p = self.prefix(dataset)
        return [f"{p}_train_plot.png"] + [f"{p}_samples_{k}.png" for k in PANELS]

    def _panel_title(self, dataset, panel):
        return self.figure_title(dataset, f"Samples ({panel.replace('_', ' ')})")

    def run_figures(self, run):
        from .. import figures

        names = self.figure_names(run.dataset)
        out = {names[0]: super().run_figures(run)[names[0]]}
        for name, panel in zip(names[1:], PANELS):
            out[name] = figures.Figure(lambda p, panel=panel: figures.pairs_figure(
                p, np.load(run.dir / f"samples_{panel}.npy"), run.artifacts()[f"samples_{panel}"]["captions"],
                self._panel_title(run.dataset, panel)), "no final samples saved")
        return out

    def pretrained_figures(self, model, config, entry, *, seed=0, device="cpu", extra=None):
        from .. import data, figures

        ds = entry["dataset"]
        tok = q4.load_tokenizer(config["tokenizer"], device)
        _, test, _, test_caps = data.load(ds)
        trained = Trained(model, config, None, {"vocab": vocab_from_config(config)})
        panels = self.panels(trained, tok, test, test_caps, seed=seed)
        return {name: (lambda p, panel=panel, imgs=imgs, caps=caps: figures.pairs_figure(
                    p, imgs, caps, self._panel_title(ds, panel)))
                for name, (panel, (imgs, caps)) in zip(self.figure_names(ds)[1:], panels.items())}


MULTIMODAL = MultimodalQ()
