"""The two 1-D data sets of Q1 (ints), generated in microseconds, so they are not cached.

Set 1 follows spec.md: 1000 draws of 0.2 + 0.2*N(0,1) from RandomState(0), digitized against the 20 edges
linspace(0,1,20), first 80% train. (A different-looking variant, 0.4 + 0.1*N(0,1), circulates too; spec.md's
numbers are the ones that reproduce the course's learned-distribution figure, with ~17% of the mass at 0.)
Set 2: 10000 draws from an equal mix of N(0.4,0.05^2), N(0.5,0.10^2), N(0.7,0.02^2), clipped to [0,1],
digitized against linspace(0,1,100). The original picks each draw's component with the unseeded global
generator; here the same RandomState draws it, so the set repeats.
np.digitize maps x >= 1 to d; values are clipped to d-1 so they always lie in {0..d-1} (no draw with the
default seeds reaches 1, so this changes nothing there).
"""
from __future__ import annotations

import numpy as np


def digitize(samples: np.ndarray, d: int) -> np.ndarray:
    return np.minimum(np.digitize(samples, np.linspace(0.0, 1.0, d)), d - 1)


def split(data: np.ndarray, frac: float = 0.8):
    n = int(frac * len(data))
    return data[:n], data[n:]


def sample_1(seed: int = 0, count: int = 1000, d: int = 20):
    """-> train (800,), test (200,) ints in {0..19}."""
    rand = np.random.RandomState(seed)
    return split(digitize(0.2 + 0.2 * rand.randn(count), d))


def sample_2(seed: int = 0, count: int = 10000, d: int = 100):
    """-> train (8000,), test (2000,) ints in {0..99}."""
    rand = np.random.RandomState(seed)
    a = 0.4 + 0.05 * rand.randn(count)
    b = 0.5 + 0.10 * rand.randn(count)
    c = 0.7 + 0.02 * rand.randn(count)
    mask = rand.randint(0, 3, size=count)
    samples = np.clip(np.where(mask == 0, a, np.where(mask == 1, b, c)), 0.0, 1.0)
    return split(digitize(samples, d))
