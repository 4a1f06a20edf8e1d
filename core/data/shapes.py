"""Shapes: 20x20 images of one filled circle, square, triangle or star, at random size and rotation, centred.

Binary set (`shapes`): the shape is 0 (dark) on a background of 1 (light), as in the original; (N,20,20,1) uint8.
Coloured set (`shapes-colored`): the same shapes, 2 bits per channel, (N,20,20,3) in {0..3}. As in the course's
figures, the shape keeps one dark olive colour (1,1,0) and each image gets its own background colour, drawn
uniformly from the 46 of the 64 colours that differ from the olive by >= 2 in some channel (so it stays visible).
10,479 train / 4,491 test, like the original sets. The shape's centre is the image centre, as in every figure of
the course's sets (data version 1 placed it anywhere; the sub-pixel position was then most of what a model had to
learn: the Q2a homework net reached 0.067 nats/dim instead of 0.044, see bench/RESULTS.md).

Drawing: a pixel (centre at integer coordinates) is inside when its distance to the shape's centre is below the
shape's boundary radius in that direction. Every shape here is star-shaped about its centre, and each of its
edges runs from a vertex (radius r1, angle 0) to a point at radius r2 and angle a = pi/k; folding the angle into
[0, a] by symmetry, the boundary radius is r1*r2*sin(a) / (r2*sin(a-phi) + r1*sin(phi)).
  square: k=4, r2 = r1*cos(pi/4); triangle: k=3, r2 = r1/2; star: k=5, r2 = r1*U(0.38, 0.5); circle: r = r1.
"""
from __future__ import annotations

import numpy as np

N_TRAIN, N_TEST = 10479, 4491
SIZE = 20
KINDS = ("circle", "square", "triangle", "star")
SIZE_RANGE = (4.0, 6.5)  # circumradius in pixels before the per-kind scale below
KIND_SCALE = np.array([1.0, 1.2, 1.4, 1.4])  # triangles and stars cover less of their circle: draw them larger
SHAPE_COLOR = np.array([1, 1, 0], np.uint8)  # dark olive, as in the course's coloured figures


def draw(n: int, seed: int, size: int = SIZE, jitter: float | None = None):
    """-> masks (n,size,size) bool (True inside the shape), kinds (n,) in 0..3.
    jitter: None = the centre anywhere that keeps the shape inside (data version 1); a number j = the centre
    within +-j pixels of the image centre (0, the shipped sets: exactly at the centre, as the course's figures show)."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 4, n)
    r1 = rng.uniform(*SIZE_RANGE, n) * KIND_SCALE[kind]
    rot = rng.uniform(0, 2 * np.pi, n)
    lo, hi = np.minimum(r1, size / 2 - 0.5), np.maximum(size - 1 - r1, size / 2 - 0.5)  # keep it inside
    if jitter is None:
        cx, cy = rng.uniform(lo, hi), rng.uniform(lo, hi)
    else:  # as many draws as above, so kinds, sizes and rotations stay the same
        c = (size - 1) / 2
        cx, cy = c + rng.uniform(-jitter, jitter, n), c + rng.uniform(-jitter, jitter, n)
    k = np.array([1, 4, 3, 5])[kind]
    ratio = np.select([kind == 1, kind == 2, kind == 3], [np.cos(np.pi / 4), 0.5, rng.uniform(0.38, 0.5, n)], 1.0)
    r2 = r1 * ratio

    col = lambda v: v[:, None, None]  # noqa: E731  (n,) -> (n,1,1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xx[None] - col(cx), yy[None] - col(cy)
    dist = np.hypot(dx, dy)  # (n,size,size)
    a = col(np.pi / k)
    phi = np.mod(np.arctan2(dy, dx) - col(rot), 2 * a)
    phi = np.where(phi > a, 2 * a - phi, phi)  # fold into [0, a]
    edge = col(r1 * r2 * np.sin(np.pi / k)) / (col(r2) * np.sin(a - phi) + col(r1) * np.sin(phi))
    boundary = np.where(col(kind) == 0, col(r1), edge)
    return dist < boundary, kind


def binary(masks: np.ndarray) -> np.ndarray:
    """(n,H,W) bool -> (n,H,W,1) uint8: shape 0, background 1."""
    return (~masks).astype(np.uint8)[..., None]


def background_colors() -> np.ndarray:
    """The 2-bit colours that stand out from the shape colour: (46,3) uint8."""
    allc = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(np.uint8)
    far = np.abs(allc.astype(int) - SHAPE_COLOR).max(1) >= 2
    return allc[far]


def colored(masks: np.ndarray, seed: int) -> np.ndarray:
    """(n,H,W) bool -> (n,H,W,3) uint8 in {0..3}: olive shape on a per-image background colour."""
    rng = np.random.default_rng([seed, 1])
    pal = background_colors()
    bg = pal[rng.integers(0, len(pal), len(masks))]  # (n,3)
    return np.where(masks[..., None], SHAPE_COLOR, bg[:, None, None, :]).astype(np.uint8)


def make(seed: int = 0, colour: bool = False, n_train: int = N_TRAIN, n_test: int = N_TEST,
         jitter: float | None = 0.0):
    """-> dict(train, test): binary (N,20,20,1) {0,1} or coloured (N,20,20,3) {0..3}, uint8. jitter: see draw."""
    masks, _ = draw(n_train + n_test, seed, jitter=jitter)
    x = colored(masks, seed) if colour else binary(masks)
    return {"train": x[:n_train], "test": x[n_train:]}
