"""Coloured MNIST sets, made from the real MNIST digits (train 60,000 / test 10,000), 2 bits per channel.

The digit's pixels are those with grey level > 127.5 (the binary MNIST mask), except in `mnist-colored` v2.

`mnist-colored` (generator v2, the course's look): every pixel of the digit that is not black (grey level > 0,
  the course's own mask: it matches the course's two originals in reference-figures/q4_a_dset1_samples.png pixel
  for pixel) takes one of 3 dark colours (teal, dark green, dark grey), the rest one of 4 pastels (pink, light
  magenta, grey, mauve). Background: 3 of the pastels per image (drawn by weight, the first favoured); which one a
  pixel takes is the argmax of 3 smooth random fields (7x7 noise, bilinearly upsampled), so it forms patches; 4%
  of pixels are then re-drawn among the 3 (speckle). Digit: one or two of the dark colours in patches (4x4 noise),
  2% of its pixels speckled with the background. Measured against the course's figures by `colour_stats`
  (tests/test_data.py, on the 10,000 test images): 6 colours cover 95% of the pixels (v1: 23); total-variation
  distance to the course's originals 0.16 (v1: 0.81), to its Q4b samples 0.19 (v1: 0.77).
  Generator v1 (the first look: 17 light colours, 8 dark ones, mask > 127.5) stays reachable as
  `textured(..., version=1)` for checkpoints trained on it (their manifest entry says `data_version: 1`).
`mnist-v2`: a solid-colour digit on a solid background of another colour, with a 6-word caption
  "<modifier> <colour> <digit> on <modifier> <colour>" that is true of the pixels under the fixed table below:
  each colour has a base 2-bit RGB; "plain" and "normal" are the base, "dark" subtracts 1 from every channel,
  "light" adds 1 to every channel (clipped to 0..3), "bright" scales the channels so the largest is 3.
  In 2 bits per channel the 75 phrases draw only 34 colours (light pink, light gray, bright gray and plain white
  are all (3,3,3)), so generator v2 names every drawn colour by its one phrase (`NAME_OF`): "plain <colour>" where
  the colour is one of the 15 base colours, else the modified phrase whose base colour is nearest the drawn one
  (light orange, not light brown, for (3,2,1); dark red, not dark orange, for (2,0,0)), "dark" before "light" on a
  tie (dark gray, not light black). A caption then names what is drawn, and one colour is never two captions.
  The pixels are those of v1 (same codes drawn, then renamed), which named each colour by the phrase drawn.
  Digit and background always differ by >= 2 in some channel (visible) and were drawn with different colour
  words. The digit word is the MNIST label spelled out. Stored as codes (modifier, colour of digit; modifier,
  colour of background) + labels; `caption()` turns them into words.
Everything is vectorized and drawn in chunks; both sets take a few seconds for 70,000 images.
"""
from __future__ import annotations

import numpy as np

MODIFIERS = ("plain", "bright", "light", "dark", "normal")
COLOURS = {  # base colour, 2 bits per channel (0..3)
    "turquoise": (1, 3, 2), "yellow": (3, 3, 0), "green": (0, 2, 0), "orange": (3, 1, 0), "red": (3, 0, 0),
    "blue": (0, 0, 3), "pink": (3, 2, 2), "white": (3, 3, 3), "purple": (2, 0, 2), "gray": (2, 2, 2),
    "brown": (2, 1, 0), "cyan": (0, 3, 3), "magenta": (3, 0, 3), "black": (0, 0, 0), "gold": (3, 2, 0),
}
COLOUR_NAMES = tuple(COLOURS)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CHUNK = 5000
SPECKLE = 0.03  # v1: share of background pixels re-drawn at random among the 3 colours


def modify(base, modifier: str) -> np.ndarray:
    c = np.asarray(base, np.int64)
    if modifier == "dark":
        c = c - 1
    elif modifier == "light":
        c = c + 1
    elif modifier == "bright" and c.max() > 0:
        c = c * 3 // c.max()
    return np.clip(c, 0, 3).astype(np.uint8)


# TABLE[modifier index, colour index] -> RGB in 0..3, shape (5, 15, 3)
TABLE = np.array([[modify(COLOURS[c], m) for c in COLOUR_NAMES] for m in MODIFIERS], np.uint8)


def rgb_of(modifier: str, colour: str) -> np.ndarray:
    return TABLE[MODIFIERS.index(modifier), COLOUR_NAMES.index(colour)]


def _one_name(rgb) -> tuple[int, int]:
    """(modifier, colour) indices of the one phrase that names a drawable colour (see the module doc)."""
    drawn = np.asarray(rgb, int)
    phrases = [(m, c) for m in range(len(MODIFIERS)) for c in range(len(COLOUR_NAMES))
               if (TABLE[m, c] == drawn).all()]
    if not phrases:
        raise ValueError(f"no phrase draws {tuple(int(v) for v in drawn)}")
    prefer = ("plain", "dark", "light", "bright", "normal")
    return min(phrases, key=lambda mc: (MODIFIERS[mc[0]] != "plain",
                                        int(((np.array(COLOURS[COLOUR_NAMES[mc[1]]]) - drawn) ** 2).sum()),
                                        prefer.index(MODIFIERS[mc[0]])))


# every colour the table draws -> its one phrase, as (modifier, colour) indices (34 colours)
NAME_OF = {tuple(int(v) for v in rgb): _one_name(rgb) for rgb in np.unique(TABLE.reshape(-1, 3), axis=0)}
# the words any caption can hold (the vocabulary of the language, whether or not v2's captions use each)
CAPTION_WORDS = tuple(sorted(set(MODIFIERS) | set(COLOUR_NAMES) | set(DIGITS) | {"on"}))


# what a page says of the rule (the Data sets page, Q6)
CAPTION_RULE = ("Captions read `<modifier> <colour> <digit> on <modifier> <colour>`. Each colour has a 2-bit base "
                "(RGB in 0..3); dark takes 1 from every channel, light adds 1, bright scales the largest channel to "
                "3. In 2 bits many phrases land on one colour (light pink, bright gray and plain white are all "
                "white), so the data name each of the 34 colours they draw by one phrase: plain for the 15 base "
                "colours, else the modified colour whose base is nearest.")


def one_name(modifier: str, colour: str) -> tuple[str, str]:
    """The phrase generator v2 uses for the colour that (modifier, colour) draws: ("light", "pink") -> ("plain",
    "white")."""
    m, c = NAME_OF[tuple(int(v) for v in rgb_of(modifier, colour))]
    return MODIFIERS[m], COLOUR_NAMES[c]


def renamed(codes) -> np.ndarray:
    """(N,4) codes -> the same colours, each named by its one phrase (generator v2)."""
    codes = np.array(codes, np.int64)
    for a, b in ((0, 1), (2, 3)):
        rgb = TABLE[codes[:, a], codes[:, b]]
        codes[:, [a, b]] = [NAME_OF[tuple(int(v) for v in x)] for x in rgb]
    return codes


def caption(code, label) -> str:
    """code: (digit modifier, digit colour, background modifier, background colour) indices; label: 0..9."""
    dm, dc, bm, bc = (int(v) for v in code)
    return f"{MODIFIERS[dm]} {COLOUR_NAMES[dc]} {DIGITS[int(label)]} on {MODIFIERS[bm]} {COLOUR_NAMES[bc]}"


def all_colours() -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(np.uint8)


def bilinear(lo: int, hi: int) -> np.ndarray:
    """(hi, lo) matrix that upsamples a length-lo signal to length hi by linear interpolation."""
    pos = np.linspace(0, lo - 1, hi)
    i0 = np.minimum(np.floor(pos).astype(int), lo - 2)
    w = pos - i0
    m = np.zeros((hi, lo), np.float32)
    m[np.arange(hi), i0], m[np.arange(hi), i0 + 1] = 1 - w, w
    return m


# ----------------------------------------------------------------------------- textured (mnist-colored)
PASTELS = {"pink": (3, 2, 2), "light magenta": (3, 2, 3), "grey": (2, 2, 2), "mauve": (2, 1, 2)}
PASTEL_WEIGHTS = (0.55, 0.25, 0.17, 0.03)
DARKS = {"teal": (0, 1, 1), "dark green": (0, 1, 0), "dark grey": (1, 1, 1)}
DARK_WEIGHTS = (0.45, 0.35, 0.20)
FAVOUR = (0.25, 0.0, -0.15)  # added to the 3 background fields: the first colour of a palette covers the most
ONE_DARK = 0.3   # share of digits in a single dark colour
DIGIT_SPECKLE = 0.02


def _pick(rng, weights, n: int, k: int) -> np.ndarray:
    """(n, k) indices drawn without replacement in proportion to weights (Gumbel top-k)."""
    g = np.log(np.asarray(weights))[None] - np.log(-np.log(rng.random((n, len(weights)))))
    return np.argsort(-g, 1)[:, :k]


def _fields(rng, n: int, k: int, lo: int, h: int, w: int) -> np.ndarray:
    """(n, k, h, w) smooth random fields: lo x lo uniform noise, bilinearly upsampled."""
    return bilinear(lo, h) @ rng.random((n, k, lo, lo), np.float32) @ bilinear(lo, w).T


def _textured_chunk(gray: np.ndarray, rng) -> np.ndarray:
    n, h, w = gray.shape
    pal = np.empty((n, 5, 3), np.uint8)  # 3 pastels for the background, 2 dark colours for the digit
    pal[:, :3] = np.array(list(PASTELS.values()), np.uint8)[_pick(rng, PASTEL_WEIGHTS, n, 3)]
    dark = _pick(rng, DARK_WEIGHTS, n, 2)
    one = rng.random(n) < ONE_DARK
    dark[one, 1] = dark[one, 0]
    pal[:, 3:] = np.array(list(DARKS.values()), np.uint8)[dark]
    fields = _fields(rng, n, 3, 7, h, w) + np.array(FAVOUR, np.float32)[None, :, None, None]
    index = fields.argmax(1).astype(np.uint8)
    speckle = rng.random((n, h, w), np.float32) < SPECKLE
    index[speckle] = rng.integers(0, 3, int(speckle.sum()))
    digit = (3 + _fields(rng, n, 2, 4, h, w).argmax(1)).astype(np.uint8)
    speckle = rng.random((n, h, w), np.float32) < DIGIT_SPECKLE
    digit[speckle] = index[speckle]
    index = np.where(gray > 0, digit, index)
    return pal.reshape(-1, 3)[index + 5 * np.arange(n)[:, None, None]]  # (n,h,w,3)


def _textured_chunk_v1(gray: np.ndarray, rng) -> np.ndarray:
    mask = gray > 127.5
    n, h, w = mask.shape
    allc = all_colours()
    light = allc[(allc.min(1) >= 1) & (allc.sum(1, dtype=int) >= 6)]
    dark = allc[allc.max(1) <= 1]
    # each image gets a palette of 5 colours: 3 light ones for the background, c1 -> c2 for the digit
    pal = np.empty((n, 5, 3), np.uint8)
    pal[:, :3] = light[rng.integers(0, len(light), (n, 3))]
    pal[:, 3] = dark[rng.integers(0, len(dark), n)]
    pal[:, 4] = pal[:, 3]
    ch = rng.integers(0, 3, n)
    pal[np.arange(n), 4, ch] ^= 1  # c2: one channel of c1 flipped between 0 and 1
    # background patches: argmax of 3 smooth fields (7x7 noise, bilinear up to h x w), then speckle
    fields = bilinear(7, h) @ rng.random((n, 3, 7, 7), np.float32) @ bilinear(7, w).T  # (n,3,h,w)
    index = fields.argmax(1).astype(np.uint8)  # (n,h,w) in 0..2
    speckle = rng.random((n, h, w), np.float32) < SPECKLE
    index[speckle] = rng.integers(0, 3, int(speckle.sum()))
    # digit: c1 on one side of a random straight line, c2 on the other
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(theta) * xx + np.sin(theta) * yy
    t = (t - t.min((1, 2), keepdims=True)) / np.ptp(t, (1, 2), keepdims=True)
    digit = np.where(t < rng.uniform(0.3, 0.7, n).astype(np.float32)[:, None, None], 3, 4).astype(np.uint8)
    index = np.where(mask, digit, index)
    return pal.reshape(-1, 3)[index + 5 * np.arange(n)[:, None, None]]  # (n,h,w,3)


def textured(gray: np.ndarray, seed, version: int = 2) -> np.ndarray:
    """gray (N,28,28) uint8 MNIST -> (N,28,28,3) uint8 in {0..3}; version 1 = the first generator."""
    rng = np.random.default_rng(seed)
    chunk = {1: _textured_chunk_v1, 2: _textured_chunk}[version]
    return np.concatenate([chunk(gray[i:i + CHUNK], rng) for i in range(0, len(gray), CHUNK)])


# ----------------------------------------------------------------------------- measured against the course's figures
def colour_histogram(images) -> np.ndarray:
    """(64,) share of pixels per 2-bit colour (index 16 r + 4 g + b) of (..., 3) images in {0..3}."""
    x = np.asarray(images).astype(np.int64).reshape(-1, 3)
    return np.bincount(x[:, 0] * 16 + x[:, 1] * 4 + x[:, 2], minlength=64) / len(x)


def colour_stats(images, reference: np.ndarray) -> dict:
    """How close a set's colours are to a reference histogram: total-variation distance, and how many colours
    cover 95% of the pixels (of the set, and of the reference)."""
    def n95(h):
        return int(np.searchsorted(np.cumsum(np.sort(h)[::-1]), 0.95) + 1)

    h = colour_histogram(images)
    return {"tv": float(0.5 * np.abs(h - reference).sum()), "colours_95": n95(h), "reference_colours_95": n95(reference)}


def figure_images(png, size: int = 28) -> np.ndarray:
    """The size x size images of a grid figure (black frames between cells, as the course draws them), read at
    each image pixel's centre and rounded to 2 bits -> (cells, size, size, 3) uint8 in {0..3}."""
    from PIL import Image

    a = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
    black = a.max(-1) < 30
    rows, cols = np.where(black.mean(1) > 0.5)[0], np.where(black.mean(0) > 0.5)[0]
    grid = black[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    def runs(is_frame):
        out, start = [], None
        for i, f in enumerate(list(is_frame) + [True]):
            if not f and start is None:
                start = i
            elif f and start is not None:
                if i - start >= size // 2:
                    out.append((start, i))
                start = None
        return out

    cells = []
    for r0, r1 in runs(grid.mean(1) > 0.9):
        for c0, c1 in runs(grid.mean(0) > 0.9):
            ys = rows[0] + r0 + ((np.arange(size) + 0.5) * (r1 - r0) / size).astype(int)
            xs = cols[0] + c0 + ((np.arange(size) + 0.5) * (c1 - c0) / size).astype(int)
            cells.append(np.clip(np.rint(a[ys][:, xs] / 85), 0, 3))
    return np.array(cells, np.uint8)


# The course's figures of its coloured MNIST (data set 1): the two originals (top row of q4_a_dset1_samples.png)
# and its Q4b model's 100 samples; their colour histograms are kept in course_colours.json (made by
# `course_histograms`, checked against the figures by tests/test_data.py wherever the figures are at hand).
COURSE_FIGURES = {"originals": ("q4_a_dset1_samples.png", slice(0, 2)), "q4b_samples": ("q4_b_dset1_samples.png", None)}


def course_histograms(folder) -> dict:
    """{name: (64,) histogram} measured from the course's figures in folder."""
    from pathlib import Path

    out = {}
    for name, (file, cells) in COURSE_FIGURES.items():
        imgs = figure_images(Path(folder) / file)
        out[name] = colour_histogram(imgs if cells is None else imgs[cells])
    return out


def course_reference() -> dict:
    """{name: (64,) histogram} of the course's figures, as kept in course_colours.json."""
    import json
    from pathlib import Path

    kept = json.loads((Path(__file__).with_name("course_colours.json")).read_text())
    return {k: np.array(v["histogram"]) for k, v in kept["histograms"].items()}


# ----------------------------------------------------------------------------- solid with captions (mnist-v2)
def draw_codes(n: int, rng) -> np.ndarray:
    """-> (n,4) codes (digit modifier, digit colour, background modifier, background colour) with visible contrast."""
    codes = np.stack([rng.integers(0, len(MODIFIERS), n), rng.integers(0, len(COLOURS), n),
                      rng.integers(0, len(MODIFIERS), n), rng.integers(0, len(COLOURS), n)], 1)
    while True:
        fg, bg = TABLE[codes[:, 0], codes[:, 1]].astype(int), TABLE[codes[:, 2], codes[:, 3]].astype(int)
        bad = (codes[:, 1] == codes[:, 3]) | (np.abs(fg - bg).max(1) < 2)
        if not bad.any():
            return codes
        k = int(bad.sum())
        codes[bad, 2], codes[bad, 3] = rng.integers(0, len(MODIFIERS), k), rng.integers(0, len(COLOURS), k)


def solid(gray: np.ndarray, seed, version: int = 2):
    """gray (N,28,28) uint8 -> images (N,28,28,3) uint8 {0..3}, codes (N,4) uint8; version 1 names each colour by
    the phrase drawn, version 2 by its one phrase (the same pixels)."""
    rng = np.random.default_rng(seed)
    codes = draw_codes(len(gray), rng)
    if version >= 2:
        codes = renamed(codes)
    fg, bg = TABLE[codes[:, 0], codes[:, 1]], TABLE[codes[:, 2], codes[:, 3]]
    out = np.empty(gray.shape + (3,), np.uint8)
    for i in range(0, len(gray), CHUNK):
        s = slice(i, i + CHUNK)
        out[s] = np.where((gray[s] > 127.5)[..., None], fg[s, None, None], bg[s, None, None])
    return out, codes.astype(np.uint8)


def make_textured(seed: int, mnist_gray, version: int = 2) -> dict:
    xtr, _, xte, _ = mnist_gray
    return {"train": textured(xtr, [seed, 0], version), "test": textured(xte, [seed, 1], version)}


def make_solid(seed: int, mnist_gray, version: int = 2) -> dict:
    xtr, ytr, xte, yte = mnist_gray
    train, ctr = solid(xtr, [seed, 0], version)
    test, cte = solid(xte, [seed, 1], version)
    return {"train": train, "test": test, "train_codes": ctr, "test_codes": cte,
            "train_labels": np.asarray(ytr, np.uint8), "test_labels": np.asarray(yte, np.uint8)}
