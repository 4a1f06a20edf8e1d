"""The homework notebook's calls, one per question, so a student can drop ours into the notebook.

Each trains in-process with the question's homework preset (on the best device present) and returns what the
notebook plots. They are thin: the work lives in core.questions.
"""
from __future__ import annotations

import numpy as np

from .device import pick_device
from .questions import get


def _train_1d(key, train_data, test_data, d, dset_id):
    q = get(key)
    model, res = q.train(train_data, test_data, d, q.preset("homework"), seed=0, device=pick_device())
    return np.array(res.train_losses), np.array(res.test_losses), q.distribution(model)


def q1_a(train_data, test_data, d, dset_id):
    """Histogram: (train losses per minibatch, test losses (epochs+1), distribution (d,) summing to 1)."""
    return _train_1d("q1a", train_data, test_data, d, dset_id)


def q1_b(train_data, test_data, d, dset_id):
    """Discretized mixture of 4 logistics: same returns as q1_a."""
    return _train_1d("q1b", train_data, test_data, d, dset_id)
