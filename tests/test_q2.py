"""Q2 question module: presets, refusals of bad input, a short run that learns, samples, the notebook functions."""
import numpy as np
import pytest
import torch

from core.questions import get
from core.questions.base import InvalidHyperparameters
from core.questions.base import Data, RunContext
from core.questions.q2 import IMAGES, complete, draw, receptive_map
from core.sources import build as build_from_config
from core.lab import InvalidSpec, RunSpec, store as RunStore

TINY = {"filters": 8, "kernel_size": 3, "epochs": 2, "batch_size": 32, "lr": 1e-2, "subset": 600}


def _data(name, n_train=600, n_test=200):
    from core import data

    train, test = data.load(name)
    return train[:n_train], test[:n_test]


@pytest.mark.parametrize("key", ["q2a", "q2b"])
def test_presets_validate_on_every_data_set(key):
    q = get(key)
    for preset in q.presets:
        for dataset in q.datasets:
            q.validate(q.preset(preset), dataset)


def test_homework_preset_is_the_spec_net():
    a, b = get("q2a").preset("homework"), get("q2b").preset("homework")
    assert (a["filters"], a["layers"], a["kernel_size"], a["batch_size"], a["lr"], a["epochs"]) == (64, 5, 7, 128, 1e-3, 10)
    assert (b["filters"], b["blocks"], b["kernel_size"], b["layer_norm"], b["batch_size"], b["lr"]) == (120, 8, 7, True, 128, 1e-3)


def test_image_table_matches_the_data():
    from core import data

    for name, (shape, n) in IMAGES.items():
        train, _ = data.load(name)
        assert train.shape[1:] == shape and len(train) == n


@pytest.mark.parametrize("key,dataset,bad,field,words", [
    ("q2a", "shapes", {"kernel_size": 6}, "kernel_size", "odd"),
    ("q2a", "shapes", {"kernel_size": 21}, "kernel_size", "larger than the 20x20"),
    ("q2b", "mnist-colored", {"kernel_size": 29}, "kernel_size", "larger than the 28x28"),
    ("q2a", "mnist", {"filters": 0}, "filters", "between 1 and"),
    ("q2b", "shapes-colored", {"filters": 0}, "filters", "between 2 and"),
    ("q2a", "shapes", {"batch_size": 200, "subset": 100}, "batch_size", "larger than the 100 training images"),
    ("q2a", "shapes", {"batch_size": 128, "subset": 0.01}, "batch_size", "larger than the 105 training images"),
    ("q2a", "shapes", {"subset": 20000}, "subset", "only 10479"),
    ("q2a", "shapes", {"subset": 12.5}, "subset", "whole"),
])
def test_bad_input_is_refused_on_the_right_field_and_nothing_runs(runs_dir, key, dataset, bad, field, words):
    q = get(key)
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({**q.preset("quick"), **bad}, dataset)
    assert field in e.value.errors and words in e.value.errors[field], e.value.errors
    store = RunStore(runs_dir)
    with pytest.raises(InvalidSpec):
        store.submit(RunSpec(key, dataset, {**q.preset("quick"), **bad}), start=False)
    assert store.list() == []


def test_train_refuses_bad_settings_for_the_arrays_it_gets():
    train, test = _data("shapes", 100, 50)
    with pytest.raises(InvalidHyperparameters) as e:
        get("q2a").train(Data(train, test), {**TINY, "subset": 1.0, "batch_size": 101})
    assert "batch_size" in e.value.errors


class Recorder(RunContext):
    keeps = True

    def __init__(self):
        self.events, self.images = [], {}

    def emit(self, type, **f):
        self.events.append((type, f))

    def cancelled(self):
        return False

    def save_images(self, name, images, **meta):
        self.images[name] = np.asarray(images)


def test_a_short_run_learns_and_samples_look_right():
    train, test = _data("shapes", 1200, 300)
    q, ctx = get("q2a"), Recorder()
    t = q.train(Data(train, test), {**TINY, "layers": 2, "subset": 1.0, "epochs": 3}, seed=0, ctx=ctx)
    model, res = t.model, t.result
    assert len(res.test_losses) == 4 and len(res.train_losses) == 3 * res.steps_per_epoch
    assert res.test_losses[-1] < 0.5 * res.test_losses[0], res.test_losses
    assert sorted(ctx.images) == ["preview_epoch1", "preview_epoch2", "preview_epoch3"]
    assert ctx.images["preview_epoch3"].shape == (25, 20, 20, 1)
    s = q.final_samples(model, (20, 20, 1), seed=1)
    assert s.shape == (100, 20, 20, 1) and s.dtype == np.uint8 and set(np.unique(s)) <= {0, 1}
    assert np.array_equal(s, q.final_samples(model, (20, 20, 1), seed=1))      # seeded
    # the checkpoint config rebuilds the same net
    config = q.config(model, (20, 20, 1))
    clone = build_from_config(config)
    clone.load_state_dict(model.state_dict())
    x = torch.as_tensor(test[:4])
    assert torch.allclose(clone.eval()(x), model.eval()(x), atol=1e-6)


def test_colour_samples_and_completions_keep_the_given_half():
    q = get("q2b")
    model = q.build((20, 20, 3), {**q.defaults(), **TINY, "blocks": 1})
    s = draw(model, 3, (20, 20, 3), seed=0)
    assert s.shape == (3, 20, 20, 3) and s.dtype == np.uint8 and s.max() <= 3
    _, test = _data("shapes-colored", 0, 2)
    rows = []
    out = complete(model, test, k=3, seed=0, on_row=lambda r, x: rows.append(r))
    assert out.shape == (2, 3, 20, 20, 3)
    assert np.array_equal(out[:, :, :10], np.repeat(test[:, None, :10], 3, 1))
    assert rows == list(range(10, 20))                        # only the missing rows are drawn


def test_receptive_map_shows_the_blind_spot():
    m = receptive_map(layers=3, kernel_size=3, H=12, W=12, row=6, col=6)
    assert m[6, 6] == 3 and (m[7:] == 0).all() and (m[6, 7:] == 0).all()   # nothing later is seen
    assert m[5, 5] == 1 and m[6, 5] == 1                                      # neighbours above/left are
    assert (m == 2).any()                                                     # earlier pixels never reached


def test_run_cancels_while_sampling():
    from core.train import RunCancelled

    class Cancel(Recorder):
        def cancelled(self):
            return True

    q = get("q2a")
    model = q.build((20, 20, 1), {**q.defaults(), **TINY})
    with pytest.raises(RunCancelled):
        q.final_samples(model, (20, 20, 1), ctx=Cancel())


@pytest.mark.parametrize("fn,name,C", [("q2_a", "shapes", 1), ("q2_b", "shapes-colored", 3)])
def test_notebook_functions_return_shapes(fn, name, C):
    from core import homework

    train, test = _data(name, 256, 64)
    tiny = {**TINY, "subset": 1.0, "epochs": 1, ("layers" if C == 1 else "blocks"): 1}
    tr, te, samples = getattr(homework, fn)(train, test, (20, 20) if C == 1 else (20, 20, 3), 1, **tiny)
    assert tr.shape == (8,) and te.shape == (2,)
    assert samples.shape == (100, 20, 20, C) and samples.dtype == np.uint8


# ------------------------------------------------------------------------------------------------ the page
def _app(page="pages/q2_pixelcnn.py"):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(page)
    at.run()
    return at


def test_page_renders_and_offers_the_shipped_checkpoint_or_says_there_is_none(runs_dir):
    from core import checkpoints

    at = _app()
    assert not at.exception, [e.value for e in at.exception]
    if checkpoints.find(name="q2a-shapes"):
        assert any("q2a-shapes" in o for o in next(s for s in at.selectbox if s.label == "Model").options)
    else:
        assert any("No model for" in i.value for i in at.info)


def test_shipped_checkpoints_load_and_sample():
    from core import checkpoints
    from core.questions.q2 import PRETRAINED
    from core.sources import load as load_model

    for dataset, name in PRETRAINED.items():
        if checkpoints.find(name=name):
            model, config = load_model(f"pretrained:{name}")
            s = draw(model, 2, config["image_shape"], seed=0)
            assert s.shape == (2, *config["image_shape"]) and s.max() < config["n_values"]


def test_page_samples_and_completes_with_a_finished_run(runs_dir):
    from core.engine.worker import main as run_worker

    store = RunStore(runs_dir)
    rid = store.submit(RunSpec("q2a", "shapes", {**TINY, "layers": 1, "epochs": 1, "subset": 64}), start=False)
    assert run_worker(str(store.root / rid)) == 0 and store.status(rid)["state"] == "done"
    events, _ = store.events(rid)
    names = [e["name"] for e in events if e["type"] == "artifact"]
    assert names == ["preview_epoch1", "model", "samples"]
    assert np.load(store.root / rid / "samples.npy").shape == (100, 20, 20, 1)
    at = _app()
    assert not at.exception, [e.value for e in at.exception]
    next(b for b in at.button if b.label == "Draw samples").click().run()
    next(b for b in at.button if b.label == "Complete").click().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c for i in at.get("image") for c in i.captions)
    assert "25 samples" in captions and "original" in captions
