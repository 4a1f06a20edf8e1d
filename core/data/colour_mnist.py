"""Coloured MNIST sets, made from the real MNIST digits (train 60,000 / test 10,000), 2 bits per channel.

The digit's pixels are those with grey level > 127.5 (the binary MNIST mask).

`mnist-colored`: the digit in colour on a textured, multi-colour background, like the course's set.
  Background: 3 light colours per image (min channel >= 1, sum >= 6: 17 colours); which colour a pixel takes is
  the argmax of 3 smooth random fields (7x7 noise, bilinearly upsampled to 28x28), so it forms patches; 3% of
  pixels are then re-drawn at random among the 3 (speckle). Digit: a dark colour c1 (max channel <= 1) on one side
  of a random straight line and a neighbour c2 (one channel flipped 0<->1) on the other, like the course's
  green/teal digits.
`mnist-v2`: a solid-colour digit on a solid background of another colour, with a 6-word caption
  "<modifier> <colour> <digit> on <modifier> <colour>" that is true of the pixels under the fixed table below:
  each colour has a base 2-bit RGB; "plain" and "normal" are the base, "dark" subtracts 1 from every channel,
  "light" adds 1 to every channel (clipped to 0..3), "bright" scales the channels so the largest is 3.
  Digit and background always have different colour names and differ by >= 2 in some channel (visible).
  The digit word is the MNIST label spelled out. Stored as codes (modifier, colour of digit; modifier, colour of
  background) + labels; `caption()` turns them into words.
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
SPECKLE = 0.03  # share of background pixels re-drawn at random among the 3 colours


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
def _textured_chunk(mask: np.ndarray, rng) -> np.ndarray:
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


def textured(gray: np.ndarray, seed) -> np.ndarray:
    """gray (N,28,28) uint8 MNIST -> (N,28,28,3) uint8 in {0..3}."""
    rng = np.random.default_rng(seed)
    return np.concatenate([_textured_chunk(gray[i:i + CHUNK] > 127.5, rng) for i in range(0, len(gray), CHUNK)])


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


def solid(gray: np.ndarray, seed):
    """gray (N,28,28) uint8 -> images (N,28,28,3) uint8 {0..3}, codes (N,4) uint8."""
    rng = np.random.default_rng(seed)
    codes = draw_codes(len(gray), rng)
    fg, bg = TABLE[codes[:, 0], codes[:, 1]], TABLE[codes[:, 2], codes[:, 3]]
    out = np.empty(gray.shape + (3,), np.uint8)
    for i in range(0, len(gray), CHUNK):
        s = slice(i, i + CHUNK)
        out[s] = np.where((gray[s] > 127.5)[..., None], fg[s, None, None], bg[s, None, None])
    return out, codes.astype(np.uint8)


def make_textured(seed: int, mnist_gray) -> dict:
    xtr, _, xte, _ = mnist_gray
    return {"train": textured(xtr, [seed, 0]), "test": textured(xte, [seed, 1])}


def make_solid(seed: int, mnist_gray) -> dict:
    xtr, ytr, xte, yte = mnist_gray
    train, ctr = solid(xtr, [seed, 0])
    test, cte = solid(xte, [seed, 1])
    return {"train": train, "test": test, "train_codes": ctr, "test_codes": cte,
            "train_labels": np.asarray(ytr, np.uint8), "test_labels": np.asarray(yte, np.uint8)}
