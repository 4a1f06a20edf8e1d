"""core.train.fit's test scoring: the whole test set, or a seeded sample of it per epoch and all of it at the end."""
import torch

from core.context import RunContext
from core.models.discrete1d import Histogram, nll
from core.train import TrainConfig, evaluate, fit, sample_rows


class Events(RunContext):
    def __init__(self):
        super().__init__()
        self.events = []

    def emit(self, type, **fields):
        self.events.append((type, fields))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 7, (300,), generator=g), torch.randint(0, 7, (120,), generator=g)


def test_a_test_sample_scores_part_of_the_test_set_each_epoch_and_all_of_it_at_the_end():
    train, test = _data()
    ctx = Events()
    model = Histogram(7)
    res = fit(model, nll, train, test, TrainConfig(epochs=3, batch_size=50, lr=0.05, test_sample=25, seed=4), ctx)
    tests = [f for t, f in ctx.events if t == "test"]
    assert [f["n"] for f in tests] == [25, 25, 25, 120]
    assert next(f for t, f in ctx.events if t == "start")["test_sample"] == 25
    # the last point is the whole test set's loss; the one before is the sample's (a different number)
    assert abs(res.test_losses[-1] - evaluate(model, nll, test, 64)) < 1e-6
    sample = sample_rows(test, 25, 4 + 1)
    assert len(sample) == 25 and set(sample.tolist()) <= set(test.tolist())
    assert abs(evaluate(model, nll, sample, 64) - evaluate(model, nll, test, 64)) > 1e-6


def test_without_a_sample_every_point_scores_the_whole_test_set():
    train, test = _data()
    for sample in (0, 120, 500):   # 0, or a sample as large as the set: all of it
        ctx = Events()
        fit(Histogram(7), nll, train, test, TrainConfig(epochs=2, batch_size=50, test_sample=sample), ctx)
        assert [f["n"] for t, f in ctx.events if t == "test"] == [120, 120, 120]
        assert "test_sample" not in next(f for t, f in ctx.events if t == "start")


def test_the_sample_is_seeded_and_in_the_test_sets_order():
    test = torch.arange(1000)
    a, b = sample_rows(test, 100, 7), sample_rows(test, 100, 7)
    assert torch.equal(a, b) and torch.all(a[1:] > a[:-1])
    assert not torch.equal(a, sample_rows(test, 100, 8))
    pair = sample_rows((test, test * 2), 10, 1)          # tuples stay rows together
    assert torch.equal(pair[1], pair[0] * 2)
