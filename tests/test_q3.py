"""Q3: pixel tokens, presets and bad input, a short training run, the KV-cache race, the notebook functions, the page."""
import math

import numpy as np
import pytest
import torch

from core.questions import get
from core.questions.base import InvalidHyperparameters
from tests.conftest import run_in_process
from core.models.transformer import Transformer
from core.questions.base import Data
from core.questions.q3 import (attention_maps, compatibility, complete, decode, encode, model_config, pixel_tokens,
                               race)

build_from_config = Transformer.from_config

TINY = {"d_model": 16, "heads": 2, "layers": 1}


def random_images(n, shape, seed=0):
    levels = 2 if shape[-1] == 1 else 4
    return np.random.default_rng(seed).integers(0, levels, (n, *shape)).astype(np.uint8)


def tiny_model(shape, seed=0):
    torch.manual_seed(seed)
    config = model_config(shape, TINY, "q3b" if shape[-1] == 3 else "q3a")
    return build_from_config(config).eval(), config


@pytest.mark.parametrize("shape, vocab, bos", [((5, 4, 1), 3, 2), ((5, 4, 3), 65, 64)])
def test_tokens_round_trip(shape, vocab, bos):
    x = random_images(7, shape)
    seq = encode(x)
    assert seq.shape == (7, 5 * 4 + 1) and (seq[:, 0] == bos).all() and seq[:, 1:].max() < bos
    assert np.array_equal(decode(seq[:, 1:], shape), x)
    assert model_config(shape, TINY)["vocab_size"] == vocab


def test_colour_token_is_r16_g4_b():
    x = np.array([[[[1, 2, 3], [3, 0, 0]]]], dtype=np.uint8)  # one 1x2 image
    assert pixel_tokens(x).tolist() == [[1 * 16 + 2 * 4 + 3, 48]]
    with pytest.raises(ValueError, match="0..3"):
        pixel_tokens(x + 1)


@pytest.mark.parametrize("key", ["q3a", "q3b"])
def test_presets_validate(key):
    q = get(key)
    for name in q.presets:
        hp = q.validate(q.preset(name), q.datasets[0])
        assert hp["d_model"] % hp["heads"] == 0
    home = q.preset("homework")
    assert (home["d_model"], home["heads"], home["layers"], home["batch_size"], home["lr"], home["warmup_steps"],
            home["epochs"]) == (128, 4, 2, 64, 1e-3, 1000, 15)
    assert q.default_preset("cpu") == "quick" and q.default_preset("cuda") == "homework"


def test_d_model_not_divisible_by_heads_is_refused():
    with pytest.raises(InvalidHyperparameters) as e:
        get("q3a").validate({**get("q3a").preset("quick"), "d_model": 30, "heads": 4}, "shapes")
    assert "must divide d_model" in e.value.errors["heads"]
    with pytest.raises(ValueError, match="must divide"):
        get("q3b").train(Data(random_images(4, (4, 4, 3)), random_images(4, (4, 4, 3))), {"d_model": 30, "heads": 4})


def test_wrong_data_set_and_bad_images_are_refused():
    with pytest.raises(InvalidHyperparameters) as e:
        get("q3a").validate({}, "mnist-colored")
    assert "dataset" in e.value.errors
    with pytest.raises(ValueError, match="channels|shape"):
        encode(np.zeros((2, 4, 4, 2), np.uint8))


def test_incompatible_checkpoints_give_clear_messages():
    binary = model_config((20, 20, 1), TINY)
    assert any("vocabulary has 3 tokens" in p and "65" in p for p in compatibility(binary, (20, 20, 3)))
    shapes = model_config((20, 20, 3), TINY)
    assert any("context (401 tokens) is shorter than an image of 28x28" in p for p in compatibility(shapes, (28, 28, 3)))
    assert compatibility(shapes, (20, 20, 3)) == []


def test_short_run_lowers_the_test_loss():
    from core import data

    train, test = data.load("shapes")
    q = get("q3a")
    hp = {**q.preset("quick"), **TINY, "d_model": 32, "epochs": 2, "data_fraction": 0.04, "batch_size": 16,
          "lr": 1e-2, "warmup_steps": 5, "preview_samples": 0}
    t = q.train(Data(train, test[:400], name="shapes"), hp)
    model, config, res = t.model, t.config, t.result
    start, end = res.test_losses[0], res.test_losses[-1]
    assert len(res.test_losses) == 3 and len(res.train_losses) == 2 * res.steps_per_epoch
    assert abs(start - math.log(3)) < 0.3                  # near uniform over {0, 1, <bos>} at the start
    assert end < 0.4 * start                               # learned well below it
    imgs = complete(model, config, test[:3])
    assert imgs.shape == (3, 20, 20, 1) and np.array_equal(imgs[:, :10], test[:3, :10])  # top half kept


def test_race_gives_identical_samples_and_a_time_per_step():
    model, config = tiny_model((6, 5, 3))
    seen = []
    out = race(model, config, 4, seed=3, callback=lambda name, s, sec: seen.append(name))
    assert len(out["times_uncached"]) == len(out["times_cached"]) == 30
    assert out["samples_uncached"].shape == (4, 6, 5, 3) and out["samples_uncached"].max() <= 3
    assert np.array_equal(out["samples_uncached"], out["samples_cached"]) and out["identical"] == 4
    assert seen == ["uncached"] * 30 + ["cached"] * 30


def test_attention_maps_look_only_at_earlier_pixels():
    model, config = tiny_model((4, 4, 1))
    a = attention_maps(model, config, random_images(1, (4, 4, 1))[0], pixel=6)
    maps, bos = a["maps"], a["bos"]
    assert maps.shape == (1, 2, 4, 4) and bos.shape == (1, 2)
    flat = maps.reshape(1, 2, 16)
    assert np.isnan(flat[..., 6:]).all() and not np.isnan(flat[..., :6]).any()
    assert np.allclose(flat[..., :6].sum(-1) + bos, 1, atol=1e-5)  # the weights over <bos> + earlier pixels
    assert a["probs"].shape == (2,) and abs(a["probs"].sum() - 1) < 1e-5


def test_q3_c_returns_times_and_samples_both_ways():
    from core import homework

    train, test = random_images(48, (6, 6, 3)), random_images(16, (6, 6, 3), seed=1)
    hp = {**TINY, "epochs": 1, "batch_size": 16, "warmup_steps": 2, "preview_samples": 0}
    t_no, t_with, s_no, s_with = homework.q3_c(train, test, (6, 6, 3), 1, hp=hp, n_samples=3, use_pretrained=False)
    assert t_no.shape == t_with.shape == (36,)
    assert s_no.shape == s_with.shape == (3, 6, 6, 3) and s_no.dtype == np.uint8
    assert np.array_equal(s_no, s_with)


def test_q3_a_returns_losses_and_100_samples():
    from core import homework

    train, test = random_images(32, (5, 5, 1)), random_images(8, (5, 5, 1), seed=1)
    tr, te, samples = homework.q3_a(train, test, (5, 5), 1, hp={**TINY, "epochs": 2, "batch_size": 16})
    assert tr.shape == (4,) and te.shape == (3,)
    assert samples.shape == (100, 5, 5, 1) and samples.dtype == np.uint8 and samples.max() <= 1
    with pytest.raises(ValueError, match="image_shape"):
        homework.q3_b(train, test, (6, 6, 3), 1)


def test_runs_end_to_end_train_then_race_the_checkpoint(runs_dir, monkeypatch):
    """q3b trains through the worker (tiny, a slice of the data), saves a checkpoint the race then loads."""
    from core import checkpoints
    from core.engine import worker
    from core.sources import choices, load
    from core.lab import RunSpec, store as RunStore

    store = RunStore(runs_dir)
    hp = {**get("q3b").preset("quick"), **TINY, "epochs": 1, "data_fraction": 0.05, "lr": 1e-2, "warmup_steps": 5,
          "preview_samples": 4, "test_sample": 100}
    rid = store.submit(RunSpec("q3b", "shapes-colored", hp), start=False)
    assert worker.main(str(runs_dir / rid)) == 0, (runs_dir / rid / "worker.log")
    st = store.status(rid)
    assert st["state"] == "done" and st["result"]["test_loss"] < math.log(64)   # nats per pixel token
    assert (runs_dir / rid / "samples.npy").exists() and (runs_dir / rid / "samples_epoch1.png").exists()
    assert choices(("q3a", "q3b"), "shapes-colored", runs_root=runs_dir)[-1][0] == f"run:{rid}"
    model, config = load(f"run:{rid}", "cpu", runs_dir)
    assert config["image_shape"] == [20, 20, 3] and config["vocab_size"] == 65

    # a colour checkpoint cannot race on a binary set: refused before anything runs
    q3c = get("q3c")
    with pytest.raises(InvalidHyperparameters, match="vocabulary"):
        q3c.validate({"checkpoint": f"run:{rid}"}, "shapes")
    with pytest.raises(InvalidHyperparameters, match="no pretrained checkpoint named"):
        q3c.validate({"checkpoint": "pretrained:no-such-model"}, "shapes-colored")
    with pytest.raises(InvalidHyperparameters, match="a model source is"):
        q3c.validate({"checkpoint": "model.pt"}, "shapes-colored")
    if checkpoints.find(name="q3b-shapes-colored"):  # no model named: the shipped one
        assert q3c.validate({}, "shapes-colored")["checkpoint"] is None
    else:
        with pytest.raises(InvalidHyperparameters, match="no checkpoint is shipped for shapes-colored"):
            q3c.validate({}, "shapes-colored")

    race_id = store.submit(RunSpec("q3c", "shapes-colored", {"checkpoint": f"run:{rid}", "n_samples": 2}),
                           start=False)
    from core import device

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(device, "cpu_count", lambda: 2)  # the race holds every core: it gives one back ...
    try:
        assert worker.main(str(runs_dir / race_id)) == 0
        assert torch.get_num_threads() == 2               # ... for the race only (the worker ran in this process)
    finally:
        torch.set_num_threads(before)
    res = store.status(race_id)["result"]
    assert res["identical"] == 2 and res["steps"] == 400 and res["speedup"] > 0
    events, _ = store.events(race_id)
    steps = {name: sum(len(e["times"]) for e in events if e["type"] == "race_times" and e["sampler"] == name)
             for name in ("uncached", "cached")}
    assert steps == {"uncached": 400, "cached": 400}
    start = next(e for e in events if e["type"] == "race_start")
    assert (start["threads"], start["cores"]) == (1, 2)
    assert np.array_equal(np.load(runs_dir / race_id / "no_cache.npy"), np.load(runs_dir / race_id / "with_cache.npy"))


@pytest.mark.parametrize("entry", [e for e in __import__("core.checkpoints").checkpoints.manifest()
                                   if e["question"] in ("q3a", "q3b")], ids=lambda e: e["name"])
def test_shipped_checkpoints_fit_their_data_and_have_learned(entry):
    from core import data
    from core.questions.q3 import IMAGE_SHAPES, pixel_loss
    from core.sources import load as load_model

    model, config = load_model(f"pretrained:{entry['name']}")
    assert compatibility(config, IMAGE_SHAPES[entry["dataset"]]) == []
    _, test = data.load(entry["dataset"])
    with torch.no_grad():
        loss = pixel_loss(model, encode(test[:100])).item()
    assert loss < 0.3 * math.log(config["vocab_size"] - 1)  # far below a uniform guess (nats per pixel token)


# ----------------------------------------------------------------------------------------------- the page
def _tiny_q3b_run(runs_dir):
    from core.lab import RunSpec

    hp = {**get("q3b").preset("quick"), **TINY, "epochs": 1, "data_fraction": 0.02, "preview_samples": 4,
          "test_sample": 100}
    return run_in_process(runs_dir, RunSpec("q3b", "shapes-colored", hp))


@pytest.fixture
def no_pretrained(monkeypatch):
    """The page as it is before any checkpoint is shipped."""
    from core import checkpoints

    monkeypatch.setattr(checkpoints, "manifest", lambda path=None: [])


def test_page_without_models_says_so(runs_dir, no_pretrained):
    from tests.test_app import app

    at = app("pages/q3_transformer.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("not shipped yet" in i.value for i in at.info)


def test_race_tab_without_a_race_names_its_own_button(runs_dir):
    """The race tab has no preset and no Train button: with a model and no race yet it says to press its own
    button; the monitor's "pick a preset and press Train" is the train tab's alone."""
    from core import checkpoints
    from core.questions.q3 import RACE_EMPTY
    from tests.test_app import app

    at = app("pages/q3_transformer.py")
    assert not at.exception, [e.value for e in at.exception]
    infos = [i.value for i in at.info]
    assert sum("pick a preset and press Train" in i for i in infos) == 1, infos
    if checkpoints.find(name="q3b-mnist-colored"):      # the race tab's default set has a model to race
        assert RACE_EMPTY in infos


def test_page_completes_shows_attention_and_launches_a_race(runs_dir, no_pretrained):
    from core.lab import store as RunStore
    from tests.test_app import _button, app

    rid = _tiny_q3b_run(runs_dir)
    at = app("pages/q3_transformer.py")
    at.radio(key="q3:dataset").set_value("shapes-colored").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="q3:attn:model").value == f"run:{rid}"
    captions = [c for im in at.get("image") for c in im.captions]
    assert "layer 1 · head 2 · <bos>" in " ".join(captions)  # the attention squares
    _button(at, "Complete 10 test images").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["q3:completion"][3].shape == (10, 20, 20, 3)  # drawn and kept for display
    at.radio(key="q3:race:dataset").set_value("shapes-colored").run()
    at.number_input(key="q3:race:n").set_value(2).run()
    _button(at, "Race: without cache vs with cache").click().run()
    assert not at.exception, [e.value for e in at.exception]
    races = RunStore(runs_dir).list(question="q3c")
    assert len(races) == 1 and races[0]["spec"]["hparams"]["checkpoint"] == f"run:{rid}"
    RunStore(runs_dir).cancel(races[0]["id"])  # it was started in the background: stop it


def test_race_on_a_cpu_leaves_one_core_to_the_page(monkeypatch):
    from core import device
    from core.questions.q3 import race_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device, "cpu_count", lambda: 2)
        torch.set_num_threads(2)
        assert race_threads("cpu") == 1 and torch.get_num_threads() == 1   # all cores held: give one back
        assert race_threads("cpu") == 1                                       # never below one
        monkeypatch.setattr(device, "cpu_count", lambda: 8)
        torch.set_num_threads(2)
        assert race_threads("cpu") == 2 and torch.get_num_threads() == 2   # a share of a bigger box: as given
        assert race_threads("cuda") is None
    finally:
        torch.set_num_threads(before)
