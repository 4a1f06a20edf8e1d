"""Q4: the tokenizer question (q4a), the token transformer (q4b), tokenizer lookup, the codebook lab, notebook calls."""
import json
import math

import numpy as np
import pytest
import torch

from core import checkpoints, homework
from core.questions.base import Data
from core.models.vqvae import VQVAE, VQTokenizer, VQVAEConfig
from core.questions import get
from core.questions import q4
from core.questions.base import InvalidHyperparameters

K = 64
TINY_A = {"model_size": "small", "n_embeddings": K, "embedding_dim": 16, "epochs": 2, "batch_size": 32,
          "lr": 3e-3, "data_fraction": 1.0, "ema": True}
TINY_B = {"d_model": 32, "heads": 2, "layers": 1, "epochs": 3, "batch_size": 32, "lr": 3e-3, "warmup_steps": 10,
          "samples_per_epoch": 0}


@pytest.fixture(scope="module")
def images():
    from core import data

    train, test = data.load("mnist-colored")
    return train[:1500], test[:300]


@pytest.fixture(scope="module")
def trained(images):
    """A small tokenizer fitted for 2 short epochs (a few seconds on 2 cores)."""
    train, test = images
    t = get("q4a").train(Data(train, test), TINY_A, seed=0)
    model, res, history = t.model, t.result, t.extras["history"]
    return {"model": model, "tok": VQTokenizer(model), "res": res, "history": history}


@pytest.fixture
def no_pretrained(monkeypatch, tmp_path):
    """No shipped checkpoints, whatever pretrained/ holds."""
    monkeypatch.setattr(checkpoints, "find", lambda **kw: [])


def fake_run(root, model, question="q4a", dataset="mnist-colored", state="done", rid="20260101-000000-q4a-abc123"):
    """A run folder as a finished (or not) worker leaves it, holding `model`'s checkpoint."""
    d = root / rid
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"question": question, "dataset": dataset,
                                             "hparams": {"n_embeddings": K}}))
    (d / "status.json").write_text(json.dumps({"state": state, "result": {"test_mse": 0.5}}))
    from dataclasses import asdict

    checkpoints.save_checkpoint(d / "model.safetensors", model, asdict(model.config))
    return rid


# ----------------------------------------------------------------------------------------------- presets and input
@pytest.mark.parametrize("dataset", q4.DATASETS)
def test_presets_validate(dataset, runs_dir, trained, no_pretrained):
    for preset in ("homework", "quick"):
        get("q4a").validate(get("q4a").preset(preset), dataset)
    rid = fake_run(runs_dir, trained["model"], dataset=dataset)
    for preset in ("homework", "quick"):
        hp = get("q4b").validate({**get("q4b").preset(preset), "tokenizer": rid}, dataset)
        assert hp["tokenizer"] == rid
    assert get("q4b").preset("homework")["layers"] == 4 and get("q4b").preset("homework")["epochs"] == 30
    assert get("q4a").preset("homework")["n_embeddings"] == 1024


def test_missing_tokenizer_gives_a_clear_message(runs_dir, trained, no_pretrained):
    q = get("q4b")
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate(q.preset("quick"), "mnist-v2")
    assert "no pretrained tokenizer shipped for mnist-v2 yet" in e.value.errors["tokenizer"]
    assert "Tokenizer tab" in e.value.errors["tokenizer"]
    bad = {
        "nope": "neither",
        fake_run(runs_dir, trained["model"], state="running", rid="20260101-000000-q4a-000001"): "running, not finished",
        fake_run(runs_dir, trained["model"], question="q1a", rid="20260101-000000-q1a-000002"): "not a tokenizer",
        fake_run(runs_dir, trained["model"], dataset="mnist-v2", rid="20260101-000000-q4a-000003"): "trained on mnist-v2",
    }
    for source, msg in bad.items():
        with pytest.raises(InvalidHyperparameters) as e:
            q.validate({**q.preset("quick"), "tokenizer": source}, "mnist-colored")
        assert msg in e.value.errors["tokenizer"], (source, e.value.errors)
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({**q.preset("quick"), "d_model": 30, "heads": 4, "tokenizer": "20260101-000000-q4a-000003"}, "mnist-v2")
    assert "heads" in e.value.errors and "tokenizer" not in e.value.errors


def test_out_of_range_fields_are_refused():
    with pytest.raises(InvalidHyperparameters) as e:
        get("q4a").validate({"n_embeddings": 1, "model_size": "huge", "data_fraction": 0}, "mnist-colored")
    assert {"n_embeddings", "model_size", "data_fraction"} <= set(e.value.errors)
    with pytest.raises(InvalidHyperparameters) as e:
        get("q4a").validate({"n_embeddings": 5000}, "mnist-colored")
    assert "between 2 and 4096" in e.value.errors["n_embeddings"]
    with pytest.raises(InvalidHyperparameters) as e:
        get("q4a").validate({}, "mnist")
    assert "dataset" in e.value.errors


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((4, 20, 20, 3), np.uint8), r"shape \(N, 28, 28, 3\)"),
    (np.zeros((4, 28, 28), np.uint8), r"shape \(N, 28, 28, 3\)"),
    (np.full((4, 28, 28, 3), 255, np.uint8), r"0\.\.3"),
    (np.full((4, 28, 28, 3), -1.0), r"0\.\.3"),
    (np.full((4, 28, 28, 3), 1.5), "whole numbers"),
    (np.zeros((0, 28, 28, 3), np.uint8), "empty"),
])
def test_wrong_images_give_clear_errors(bad, msg, trained):
    with pytest.raises(ValueError, match=msg):
        q4.check_images(bad)
    with pytest.raises(ValueError, match=msg):
        homework.q4_a(bad, trained["tok"])
    with pytest.raises(ValueError, match=msg):
        get("q4a").train(Data(bad, bad), TINY_A)


# ----------------------------------------------------------------------------------------------- training
def test_short_tokenizer_run_lowers_the_reconstruction_error(trained):
    h = trained["history"]
    assert [m["epoch"] for m in h] == [0, 1, 2]   # test metrics before training and after each epoch
    assert h[-1]["recon"] < 0.6 * h[0]["recon"], h
    assert h[-1]["usage"] > 4                      # more than a handful of codes in use on the test images
    assert len(trained["res"].test_losses) == 3 and trained["res"].test_losses[-1] < trained["res"].test_losses[0]


def test_short_token_transformer_run_beats_ln_k(images, trained):
    train, test = images
    t = get("q4b").train(Data(train, test, tokenizer=trained["tok"]), TINY_B, seed=0)
    model, res, info = t.model, t.result, t.extras
    assert info["vocab_size"] == K + 1
    assert res.test_losses[0] == pytest.approx(math.log(K + 1), abs=0.3)  # an untrained model is near uniform
    assert res.test_losses[-1] < math.log(K) - 0.5, res.test_losses
    imgs, toks = q4.sample_images(model, trained["tok"], 6, seed=1)
    assert imgs.shape == (6, 28, 28, 3) and imgs.dtype == np.uint8 and imgs.max() <= 3
    assert toks.shape == (6, 7, 7) and toks.max() < K  # never <bos> (id K)


def test_tokenizer_checkpoint_roundtrip_through_a_run_folder(runs_dir, trained, images, no_pretrained):
    rid = fake_run(runs_dir, trained["model"])
    tok = q4.load_tokenizer(rid, dataset="mnist-colored")
    x = images[1][:8]
    assert np.array_equal(tok.quantize(x), trained["tok"].quantize(x))
    assert q4.available_tokenizers("mnist-colored", runs_dir)[0][0] == rid
    assert q4.available_tokenizers("mnist-v2", runs_dir) == []


# ----------------------------------------------------------------------------------------------- the codebook lab
def test_lab_shrinks_switches_off_and_perturbs(trained, images):
    tok, x = trained["tok"], images[1][:100]
    z = tok.encode(x)
    for method in q4.LAB_METHODS:
        small = q4.lab_tokenizer(tok, z, 4, method)
        assert len(np.unique(small.quantize_latents(z).numpy())) <= 4
    top = np.argsort(-q4.lab_usage(tok, z))[:3]
    edited = q4.lab_tokenizer(tok, z, None, off=top)
    assert not np.isin(edited.quantize_latents(z).numpy(), top).any()
    assert torch.equal(tok.codebook, trained["model"].quantizer.codebook.weight)  # the original is untouched
    noisy = q4.lab_tokenizer(tok, z, None, scale=2.0, seed=0)
    assert q4.lab_error(noisy, x, z)["mse"] > q4.lab_error(tok, x, z)["mse"]
    rows = q4.lab_curve(tok, z, x, z, [1, 4, K], "kmeans")
    assert [r["bits"] for r in rows] == [0, 98, 49 * 6]
    assert rows[0]["mse"] > rows[-1]["mse"]
    pic = q4.token_picture(tok.quantize_latents(z[:2]).numpy(), K)
    assert pic.shape == (2, 28, 28, 3) and pic.dtype == np.uint8


@pytest.mark.parametrize("k", [0, K + 1, 2.5])
def test_lab_refuses_bad_k(trained, images, k):
    z = trained["tok"].encode(images[1][:10])
    with pytest.raises(ValueError, match="K must lie in 1.."):
        q4.lab_tokenizer(trained["tok"], z, k)
    with pytest.raises(ValueError, match=f"K must lie in 1..{K - 2}"):
        q4.lab_tokenizer(trained["tok"], z, K - 1, off=[0, 1])
    with pytest.raises(ValueError, match="method"):
        q4.lab_tokenizer(trained["tok"], z, 2, method="random")


# ----------------------------------------------------------------------------------------------- notebook calls
def test_notebook_functions_return_what_the_notebook_plots(trained, images):
    train, test = images
    rec = homework.q4_a(test[:5], trained["tok"])
    assert rec.shape == (5, 28, 28, 3) and rec.min() >= 0 and rec.max() <= 3
    # the homework preset (4 layers, 30 epochs) on a tiny set: one minibatch of 16 per epoch
    tr_losses, te_losses, samples = homework.q4_b(train[:16], test[:8], (28, 28, 3), 1, trained["tok"])
    assert len(te_losses) == 31 and len(tr_losses) == 30
    assert samples.shape == (100, 28, 28, 3) and samples.max() <= 3
    with pytest.raises(ValueError, match="28x28x3"):
        homework.q4_b(train[:8], test[:8], (20, 20, 3), 1, trained["tok"])


# ----------------------------------------------------------------------------------------------- the worker path
@pytest.mark.slow
def test_both_questions_run_end_to_end_through_the_worker(runs_dir):
    from core.lab import RunSpec, store as RunStore
    from core.engine.worker import main as run_worker

    store = RunStore(runs_dir, max_concurrent=1)
    a = store.submit(RunSpec("q4a", "mnist-colored", {**TINY_A, "data_fraction": 0.05, "epochs": 1}), start=False)
    assert run_worker(str(runs_dir / a)) == 0
    res = store.status(a)["result"]
    assert res["unit"] == "mse" and res["test_loss"] == res["test_mse"] < res["start_mse"]
    assert (runs_dir / a / "reconstructions.png").exists() and (runs_dir / a / "recon_epoch1.png").exists()
    b = store.submit(RunSpec("q4b", "mnist-colored", {**TINY_B, "tokenizer": a, "data_fraction": 0.05,
                                                      "samples_per_epoch": 4}), start=False)
    assert run_worker(str(runs_dir / b)) == 0
    res = store.status(b)["result"]
    assert res["test_loss"] < res["metrics"]["start_loss"] and res["unit"] == "nats/token"
    assert np.load(runs_dir / b / "samples.npy").shape == (100, 28, 28, 3)
    assert np.load(runs_dir / b / "tokens_test.npy").shape == (10000, 49)
    model, config = q4.load_transformer(f"run:{b}", runs_root=runs_dir)
    assert config["tokenizer"] == f"run:{a}" and model.config.vocab_size == K + 1


# ----------------------------------------------------------------------------------------------- the page
def _page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(__import__("pathlib").Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/q4_vq.py")
    return at.run()


def test_page_says_when_there_is_no_tokenizer(runs_dir, no_pretrained):
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    notes = [i.value for i in at.info if "No tokenizer for mnist-colored yet" in i.value]
    assert len(notes) == 2 and "Tokenizer** tab" in notes[0]   # the lab and the transformer tab


def test_codebook_lab_responds_to_the_controls(runs_dir, trained, no_pretrained, monkeypatch):
    from ui.server import _limiter

    held = []                      # the server's fair gate while the lab's codebook edit runs: held, by one job
    edit = q4.lab_tokenizer
    monkeypatch.setattr(q4, "lab_tokenizer", lambda *a, **k: (held.append(sum(_limiter()._running.values())),
                                                              edit(*a, **k))[1])
    fake_run(runs_dir, trained["model"])
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    metric = lambda label: next(m.value for m in at.metric if m.label == label)
    assert metric("codes in use") == f"{K} / {K}"
    full_mse = float(metric("test MSE"))
    next(s for s in at.select_slider if s.label == "codebook size K").set_value(4)
    at.radio(key="q4:lab:method").set_value("kmeans")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric("codes in use") == f"4 / {K}" and metric("bits per image, fixed-length") == "98"
    assert held and all(n == 1 for n in held), held   # the k-means ran through the gate, one job, its own
    assert float(metric("test MSE")) > full_mse
    assert any(c.label.startswith("tokenizer") for c in at.selectbox)  # the q4b form offers the finished run
    # switching a code off keeps the K the learner chose (the slider is rebuilt with new options)
    off = next(m for m in at.multiselect if m.label == "the most-used codes")
    off.set_value([off.options[0] if isinstance(off.options[0], int) else int(off.options[0].split()[1])])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(next(m for m in at.multiselect if m.label == "the most-used codes").value) == 1
    assert next(s for s in at.select_slider if s.label == "codebook size K").value == 4


def test_tokenizer_tab_launches_a_run(runs_dir, no_pretrained):
    from core.lab import store as RunStore

    at = _page()
    next(b for b in at.button if b.label == "Train VQ-VAE tokenizer").click().run()
    assert not at.exception, [e.value for e in at.exception]
    runs = RunStore(runs_dir).list()
    assert len(runs) == 1 and runs[0]["spec"]["question"] == "q4a"
    RunStore(runs_dir).cancel(runs[0]["id"])  # it was started in the background: stop it


def test_pretrained_samples_button_draws_100_images_that_survive_other_clicks(runs_dir):
    from core import checkpoints

    if not checkpoints.find(question="q4b", dataset="mnist-colored"):
        pytest.skip("no Q4b checkpoint shipped for mnist-colored")
    at = _page()
    next(b for b in at.button if b.label == "Draw 100 samples").click().run()
    assert not at.exception, [e.value for e in at.exception]
    e = checkpoints.find(question="q4b", dataset="mnist-colored")[0]
    assert at.session_state["_kept:q4b:pt"][(e["name"], 0, 1.0)].shape == (100, 28, 28, 3)

    def shown():
        return any("100 samples of" in str(img.proto) for img in at.get("image"))

    assert shown()
    at.number_input(key="q4:lab:seed").set_value(3).run()          # an unrelated click keeps them
    assert shown()
    at.slider(key="q4b:pt:temp").set_value(1.5).run()               # other settings: not drawn for them
    assert not shown()
    at.slider(key="q4b:pt:temp").set_value(1.0).run()               # back: there again, not redrawn
    assert not at.exception and shown()


def test_page_says_the_shipped_models_were_trained_on_the_earlier_coloured_mnist(runs_dir):
    from core import checkpoints, data

    olds = [e for e in checkpoints.find(dataset="mnist-colored")
            if e.get("data_version", data.SETS["mnist-colored"]["version"]) != data.SETS["mnist-colored"]["version"]]
    if not olds:
        pytest.skip("every shipped mnist-colored checkpoint is of the current generator")
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    notes = [c.value for c in at.caption if "the earlier look of this set" in c.value]
    assert {n.split("`")[1] for n in notes} == {e["name"] for e in olds if e["question"] in ("q4a", "q4b")}, notes


class CountingTokenizer:
    """quantize = every 4th pixel of the red channel (a (B,7,7) grid in 0..3); counts the images it is given."""
    n_embeddings = 4

    def __init__(self):
        self.seen = 0

    def quantize(self, x):
        self.seen += len(x)
        return np.asarray(x)[:, ::4, ::4, 0].astype(np.int64)


def test_a_shipped_tokenizers_tokens_are_kept_per_image_and_a_bad_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ARLAB_DATA_DIR", str(tmp_path))
    images = np.random.default_rng(0).integers(0, 4, (40, 28, 28, 3), dtype=np.uint8)
    tok, sha = CountingTokenizer(), "ab" * 32
    expect = q4.tokenize(CountingTokenizer(), images)
    first = q4.TokenCache(sha, images, 4).tokens(tok, np.arange(10))
    assert tok.seen == 10 and np.array_equal(first, expect[:10])
    rows = np.array([5, 8, 20, 30])
    cache = q4.TokenCache(sha, images, 4)
    again = cache.tokens(tok, rows)                                 # only 20 and 30 are new
    assert tok.seen == 12 and cache.tokenized == 2 and np.array_equal(again, expect[rows])
    assert np.array_equal(q4.TokenCache(sha, images, 4).tokens(tok, rows), expect[rows]) and tok.seen == 12
    # other images or another tokenizer: another file, nothing shared
    other = images.copy()
    other[0, 0, 0, 0] = (other[0, 0, 0, 0] + 1) % 4
    paths = {q4.TokenCache(s, x, 4).path for s, x in ((sha, images), (sha, other), ("cd" * 32, images))}
    assert len(paths) == 3
    # a torn or edited file is not trusted: everything asked is tokenized again, and the file rewritten
    path = q4.TokenCache(sha, images, 4).path
    for bad in (b"not a numpy file", None):
        if bad is None:
            edited = np.load(path)
            edited[5, 0] = 9                        # a token out of range
            np.save(path, edited)
        else:
            path.write_bytes(bad)
        tok.seen = 0
        assert np.array_equal(q4.TokenCache(sha, images, 4).tokens(tok, rows), expect[rows]) and tok.seen == 4


def test_tokenize_parts_uses_the_shared_cache_only_for_a_shipped_tokenizer(tmp_path, monkeypatch):
    from core.context import RunContext

    monkeypatch.setenv("ARLAB_DATA_DIR", str(tmp_path))
    images = np.random.default_rng(1).integers(0, 4, (30, 28, 28, 3), dtype=np.uint8)
    keep = np.array([1, 4, 9])
    tok = CountingTokenizer()
    out = q4.tokenize_parts(tok, {"train": (images, keep), "test": images[:5]}, RunContext())   # a run's tokenizer
    assert tok.seen == 8 and not (tmp_path / "tokens").exists()
    assert np.array_equal(out["train"], q4.tokenize(CountingTokenizer(), images[keep]))
    q4.tokenize_parts(tok, {"train": (images, keep)}, RunContext(), shipped_sha256="ef" * 32)
    q4.tokenize_parts(tok, {"train": (images, keep)}, RunContext(), shipped_sha256="ef" * 32)
    assert tok.seen == 8 + 3 and len(list((tmp_path / "tokens").iterdir())) == 1
    run = tmp_path / "run"
    run.mkdir()
    ctx = RunContext()
    ctx.run_dir = run
    q4.tokenize_parts(tok, {"train": (images, keep)}, ctx, shipped_sha256="ef" * 32)
    assert not list(run.iterdir())                # the shared cache holds them: the run keeps no copy
    q4.tokenize_parts(tok, {"test": images[:5]}, ctx)
    assert [p.name for p in run.iterdir()] == ["tokens_test.npy"]   # a run's own tokenizer: kept for a restart


def test_warm_tokens_fills_the_cache_once_for_each_shipped_tokenizer_and_image_array(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from core.questions.q4 import tokens

    monkeypatch.setenv("ARLAB_DATA_DIR", str(tmp_path))
    rng = np.random.default_rng(2)
    arrays = {ds: tuple(rng.integers(0, 4, (n, 28, 28, 3), dtype=np.uint8) for n in (12, 5)) for ds in q4.DATASETS}
    tok = CountingTokenizer()
    monkeypatch.setattr("core.data.load", lambda ds: arrays[ds])
    monkeypatch.setattr(tokens, "find_tokenizer", lambda v, ds: SimpleNamespace(source=f"pretrained:{ds}",
                                                                                sha256=ds.encode().hex() * 4))
    monkeypatch.setattr(tokens, "load_tokenizer", lambda source, device: tok)
    said = []
    # Q4b and Q6 both read mnist-v2 through its tokenizer: those images are tokenized once
    assert tokens.warm_cache(log=said.append) == 2 * (12 + 5) and tok.seen == 34
    assert tokens.warm_cache(log=said.append) == 0 and tok.seen == 34            # a second time: all cached
    assert len(list((tmp_path / "tokens").iterdir())) == 4 and any("0 of 12 images tokenized now" in m for m in said)
