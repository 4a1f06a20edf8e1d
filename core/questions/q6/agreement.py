"""Q6's agreement instrument: how far captions drawn for test images are true of them, and how far images drawn
for test captions match them, by a small digit classifier (core.models.digits, trained here, shipped as
`digits-mnist-v2`) and the colours read from the pixels. Used by the question's final result, bench/ and
core.pretrain (which trains the classifier)."""
from __future__ import annotations

import numpy as np
import torch

from ... import sources
from ...data.colour_mnist import CAPTION_RULE, COLOUR_NAMES, DIGITS, MODIFIERS, TABLE, one_name  # noqa: F401
from ...train import TrainConfig, fit
from ..base import Question
from ..q4.tokens import check_images, to_images, tokenize
from .sampling import captions_for, codes_for
from .vocab import WORDS, Vocab, split

N_AGREE = 1000         # test pairs each agreement number is measured on
DIGIT_CLASSIFIER = "digits-mnist-v2"


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
    """Which of the 5 judged words (WORD_PARTS) of caption `said` are the words of the image's caption: the digit,
    and for the digit and the background the colour word and its modifier. Every colour the data draw has one
    phrase (core.data.colour_mnist.NAME_OF), so the image's caption is `truth` with each colour named by its one
    phrase, and a word is true when it is that caption's word in its place: "bright gray" for a white digit gets
    neither word right, though the table draws it white too (a v2 caption never says it)."""
    t = parse(truth)
    if t is None:
        raise ValueError(f"not a generator caption: {truth!r}")
    fm, fc = one_name(*t["fg"])
    bm, bc = one_name(*t["bg"])
    w = split(said) + [""] * WORDS
    return [w[2] == DIGITS[t["digit"]], w[1] == fc, w[0] == fm, w[5] == bc, w[4] == bm]


def renamed_caption(caption: str) -> str:
    """A caption of the generator's form with each colour named by its one phrase ("light pink four on normal red"
    -> "plain white four on plain red"); anything else as it is."""
    p = parse(caption)
    if p is None:
        return caption
    (fm, fc), (bm, bc) = one_name(*p["fg"]), one_name(*p["bg"])
    return f"{fm} {fc} {DIGITS[p['digit']]} on {bm} {bc}"


def words_true(said: str, truth: str) -> tuple[int, int]:
    """(how many, of the 5 judged) words of caption `said` are the words of the image's caption (see word_hits)."""
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
    from ...models.digits import DigitClassifier, shape_map

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
    from ... import checkpoints

    if not checkpoints.find(name=DIGIT_CLASSIFIER):
        return None, None
    model, _ = sources.load(f"pretrained:{DIGIT_CLASSIFIER}", device)
    return model, checkpoints.find(name=DIGIT_CLASSIFIER)[0]


class DigitReader(Question):
    """The agreement's digit classifier as a kind of shipped model (core.questions.INSTRUMENTS): no question of its
    own (core.pretrain trains it), but its checkpoint is rebuilt and scored as a question's is."""
    key, title = "digits", "Digit classifier"
    datasets = ("mnist-v2",)
    unit = "nats"
    model_label = "a digit classifier"

    def rebuild(self, config):
        from ...models.digits import DigitClassifier

        return DigitClassifier(int(config["channels"]), int(config["hidden"]))

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from torch.nn.functional import cross_entropy

        from ...models.digits import shape_map
        from ...train import evaluate

        xy = (shape_map(test), torch.as_tensor(labels_of(loaded[3])))   # the digits the captions name
        return evaluate(model, lambda m, b: cross_entropy(m(b[0]), b[1]), xy, batch_size, device)


DIGIT_READER = DigitReader()


def agreement(model, vocab: Vocab, tokenizer, test_images, test_captions, classifier, n: int = N_AGREE,
              seed: int = 0, temperature: float = 1.0, progress=None, step_callback=None) -> dict:
    """The two agreement fractions on the first n test pairs (see the module doc); step_callback: the sampler's
    (e.g. a cancel check)."""
    progress = progress or (lambda f, m: None)
    n = min(n, len(test_images))
    imgs, caps = check_images(test_images[:n]), list(test_captions[:n])
    progress(0.0, f"captions for {n} test images")
    codes = tokenize(tokenizer, imgs)
    said = captions_for(model, vocab, codes, seed, temperature, step_callback)
    hits = np.array([word_hits(s, t) for s, t in zip(said, caps)])  # (n, 5)
    out = {"caption_words_true": float(hits.mean()), "captions_all_true": float(hits.all(1).mean()),
           "agreement_pairs": n, "by_word": {p: round(float(v), 4) for p, v in zip(WORD_PARTS, hits.mean(0))}}
    if classifier is not None:
        progress(0.5, f"images for {n} test captions")
        drawn = to_images(tokenizer.decode(codes_for(model, vocab, caps, seed, temperature, step_callback)))
        out["images_match"] = float(images_match(drawn, caps, classifier).mean())
    return out
