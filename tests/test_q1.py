import math

import numpy as np
import pytest
import torch

from core.models.discrete1d import Histogram, LogisticMixture, discretized_logistic_mixture_log_probs, nll
from core.questions import get
from core.questions.base import InvalidHyperparameters


@pytest.mark.parametrize("seed", range(20))
def test_mixture_probabilities_sum_to_one_for_any_parameters(seed):
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(1, 8, (1,), generator=g))
    d = int(torch.randint(2, 120, (1,), generator=g))
    logit_pi = torch.randn(k, generator=g) * 3
    mu = torch.rand(k, generator=g) * (d + 20) - 10          # means inside and outside the range
    log_s = torch.randn(k, generator=g) * 2                  # very narrow to very wide
    p = discretized_logistic_mixture_log_probs(logit_pi, mu, log_s, d).exp()
    assert p.shape == (d,)
    assert torch.all(p >= 0)
    assert abs(p.sum().item() - 1) < 1e-5


def test_mixture_edge_bins_take_the_tails():
    # one logistic centred far below 0: almost all mass must land in bin 0, none is lost off the edge
    p = discretized_logistic_mixture_log_probs(torch.zeros(1), torch.tensor([-50.0]), torch.zeros(1), 10).exp()
    assert p[0] > 0.999 and abs(p.sum() - 1) < 1e-6
    p = discretized_logistic_mixture_log_probs(torch.zeros(1), torch.tensor([80.0]), torch.zeros(1), 10).exp()
    assert p[-1] > 0.999 and abs(p.sum() - 1) < 1e-6


def test_mixture_matches_a_direct_numpy_formula():
    d, logit_pi, mu, log_s = 12, torch.tensor([0.3, -0.2]), torch.tensor([3.0, 8.5]), torch.tensor([0.1, 0.7])
    got = discretized_logistic_mixture_log_probs(logit_pi, mu, log_s, d).exp().numpy()
    sig = lambda z: 1 / (1 + np.exp(-z))
    pi = np.exp(logit_pi.numpy()) / np.exp(logit_pi.numpy()).sum()
    x = np.arange(d)[:, None]
    hi = np.where(x == d - 1, 1.0, sig((x + 0.5 - mu.numpy()) / np.exp(log_s.numpy())))
    lo = np.where(x == 0, 0.0, sig((x - 0.5 - mu.numpy()) / np.exp(log_s.numpy())))
    assert np.allclose(got, ((hi - lo) * pi).sum(1), atol=1e-6)


def test_histogram_starts_uniform_and_loss_is_nats():
    m = Histogram(20)
    x = torch.randint(0, 20, (50,))
    assert math.isclose(nll(m, x).item(), math.log(20), rel_tol=1e-6)


def test_invalid_hyperparameters_name_every_field():
    q = get("q1b")
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({"lr": -1, "epochs": "ten", "batch_size": 0, "components": 500}, "1d-1")
    assert {"lr", "epochs", "batch_size"} <= set(e.value.errors)
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({"components": 50}, "1d-1")        # more components than values
    assert "components" in e.value.errors
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({}, "mnist")
    assert "dataset" in e.value.errors


@pytest.mark.parametrize("key,limit", [("q1a", 2.562), ("q1b", 2.555)])
def test_defaults_beat_the_reference_on_set_1(key, limit):
    from core import data

    train, test = data.load("1d-1")
    q = get(key)
    from core.questions.base import Data

    t = q.train(Data(train, test, d=20), q.preset("homework"))
    model, res = t.model, t.result
    assert len(res.test_losses) == q.preset("homework")["epochs"] + 1
    assert len(res.train_losses) == res.steps_per_epoch * q.preset("homework")["epochs"]
    if key == "q1a":  # the histogram starts uniform
        assert res.test_losses[0] == pytest.approx(math.log(20), abs=1e-6)
    assert res.test_losses[-1] <= limit


@pytest.mark.parametrize("fn", ["q1_a", "q1_b"])
def test_notebook_functions_return_what_the_notebook_plots(fn):
    from core import data, homework

    train, test = data.load("1d-2")
    tr, te, dist = getattr(homework, fn)(train, test, 100, 2)
    assert tr.ndim == 1 and len(te) == get("q1a").preset("homework")["epochs"] + 1
    assert dist.shape == (100,) and abs(dist.sum() - 1) < 1e-6
    assert te[-1] < te[0] - 0.5          # learned well below the uniform start (ln 100 = 4.6)
    assert 3.6 < te[-1] < 3.74           # the range students reached on set 2
