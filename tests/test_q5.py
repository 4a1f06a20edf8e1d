import math

import pytest
import torch

from core.models.transformer import Transformer, TransformerConfig
from core.questions import get
from core.questions.base import InvalidHyperparameters
from core.questions.base import RunContext
from core.questions.q5 import (PAD, generate, generate_ids, loss_fn, model_config, prepare_prompt,
                               tokenizer_from_config)
from core.text import CharTokenizer, poem_windows, windows

TINY = {"context": 32, "d_model": 32, "heads": 4, "layers": 1, "epochs": 2, "batch_size": 16, "lr": 3e-3,
        "warmup_steps": 5, "samples_per_epoch": 2, "temperature": 1.0}


@pytest.fixture(scope="module")
def poems():
    """The real poetry set when fetched; otherwise a small stand-in with the same shape (lists of str)."""
    from core import data

    try:
        return data.load("poetry")
    except data.DataNotFetched:
        lines = ["The rose is red, the sky is blue,", "And all the summer days are new;",
                 "O whither goest thou, my love?", "Unto the hills and stars above."]
        poems = ["\n".join(lines[i % 4:] + lines[:i % 4]) for i in range(200)]
        return poems[:-10], poems[-10:]


def test_encode_decode_round_trip():
    tok = CharTokenizer.from_texts(["Shall I compare thee\nto a summer's day?", "—ü"])
    for s in ["Shall I compare thee", "a summer's day?\n—ü", ""]:
        ids = tok.encode(s)
        assert all(2 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == s
    assert tok.vocab_size == len(set("Shall I compare thee\nto a summer's day?—ü")) + 2


def test_bos_and_eos_wrap_every_poem_and_windows_cover_each_target_once():
    tok = CharTokenizer.from_texts(["ab", "c"])
    a, b, c = (tok.stoi[ch] for ch in "abc")
    stream = tok.stream(["ab", "c"])
    assert stream.tolist() == [tok.bos, a, b, tok.eos, tok.bos, c, tok.eos]
    assert tok.decode(stream) == "ab" and tok.decode(stream, stop_at_eos=False) == "ab\nc\n"
    rows = windows(stream, 3, PAD)  # rows of 4 tokens, stride 3
    assert rows.tolist() == [stream[0:4].tolist(), stream[3:7].tolist()]
    rows = windows(stream, 4, PAD)  # the last row is padded
    assert rows.tolist() == [stream[0:5].tolist(), stream[4:7].tolist() + [PAD, PAD]]
    targets = rows[:, 1:][rows[:, 1:] != PAD]
    assert targets.tolist() == stream[1:].tolist()  # every token but the first is predicted exactly once

    tok = CharTokenizer.from_texts(["abcdefg"])
    rows = poem_windows(tok, ["abcdefg", "ab"], 4, PAD)  # per poem: every poem's first row starts with <bos>
    p1, p2 = tok.encode("abcdefg", bos=True, eos=True), tok.encode("ab", bos=True, eos=True)
    assert rows.tolist() == [p1[0:5], p1[4:9], [p2[0], p2[1], p2[2], p2[3], PAD]]


def test_loss_counts_only_real_targets():
    tok = CharTokenizer.from_texts(["abcabc"])
    rows = windows(tok.stream(["abcabc", "ab"]), 8, PAD)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, block_size=8, d_model=16, n_heads=2, n_layers=1))
    loss, n = loss_fn(model, rows)
    assert n == len(tok.stream(["abcabc", "ab"])) - 1
    assert abs(loss.item() - math.log(tok.vocab_size)) < 0.1  # fresh model: about uniform


def _eos_prone_model(tok, context=16, seed=0):
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, block_size=context, d_model=16, n_heads=2,
                                          n_layers=1))
    with torch.no_grad():
        model.head.bias[tok.eos] = 2.0  # <eos> likely enough that most samples end somewhere in the middle
    return model


def test_a_sample_never_continues_past_eos_even_when_the_window_slides():
    tok = CharTokenizer.from_texts(["abcdefgh ij\nkl"])
    model = _eos_prone_model(tok)
    ids = generate_ids(model, tok, 64, 60, [tok.bos], temperature=1.0, seed=1)  # 60 > context 16: slides
    assert ids.shape == (64, 61)
    ended = 0
    for row in ids.tolist():
        assert tok.bos not in row[1:]
        if tok.eos in row:
            ended += 1
            assert set(row[row.index(tok.eos):]) == {tok.eos}
    assert ended > 32  # the check above was exercised
    texts, _ = generate(model, tok, 64, 60, seed=1)
    assert all(t == tok.decode(r) and len(t) <= 60 for t, r in zip(texts, ids))
    assert min(map(len, texts)) < 60


def test_generation_is_seeded():
    tok = CharTokenizer.from_texts(["abcdefgh ij\nkl"])
    model = _eos_prone_model(tok)
    a = generate_ids(model, tok, 4, 40, [tok.bos], seed=3)
    assert torch.equal(a, generate_ids(model, tok, 4, 40, [tok.bos], seed=3))


def test_unseen_characters_in_a_prompt_are_mapped_and_reported():
    tok = CharTokenizer.from_texts(["a naive cafe, 'quoted' - and more\n"])
    ids, notices = prepare_prompt(tok, "naïve café ’quoted’ ✓", 128)
    assert tok.decode(ids) == "naive cafe 'quoted'  "  # ï→i, é→e, ’→', ✓→space
    assert len(notices) == 1 and "'✓' → ' '" in notices[0] and "'é' → 'e'" in notices[0]
    with pytest.raises(ValueError, match="never seen"):
        tok.encode("✓", strict=True)
    model = _eos_prone_model(tok)
    texts, notices = generate(model, tok, 2, 10, prompt="✓ café")
    assert all(t.startswith("  cafe") for t in texts) and notices


def test_a_long_prompt_is_cut_from_the_left_with_a_notice():
    tok = CharTokenizer.from_texts(["abcdefghij "])
    prompt = "abcdefghij " * 5  # 55 characters, context 16
    ids, notices = prepare_prompt(tok, prompt, 16)
    assert len(ids) == 15 and tok.decode(ids) == prompt[-15:]
    assert any("last 15 characters" in n for n in notices)
    assert prepare_prompt(tok, "abc", 16) == ([tok.bos] + tok.encode("abc"), [])
    assert prepare_prompt(tok, "", 16) == ([tok.bos], [])
    texts, notices = generate(_eos_prone_model(tok), tok, 3, 20, prompt=prompt)
    assert all(t.startswith(prompt[-15:]) for t in texts) and notices


def test_presets_validate_and_bad_input_is_refused_clearly():
    q = get("q5")
    for name in q.presets:
        hp = q.validate(q.preset(name), "poetry")
        assert hp["context"] == 128 and hp["d_model"] % hp["heads"] == 0
    assert q.preset("homework")["epochs"] == 5 and q.preset("homework")["d_model"] >= 128
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({"d_model": 100, "heads": 8}, "poetry")
    assert "heads" in e.value.errors and "divide" in e.value.errors["heads"]
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({"context": 4, "lr": 0, "data_fraction": 1.5, "temperature": -1, "epochs": "five"}, "poetry")
    assert {"context", "lr", "data_fraction", "temperature", "epochs"} <= set(e.value.errors)
    with pytest.raises(InvalidHyperparameters) as e:
        q.validate({}, "mnist")
    assert "dataset" in e.value.errors


class FakeContext(RunContext):
    keeps = True

    device = "cpu"

    def __init__(self, tmp_path):
        self.events, self.dir = [], tmp_path

    def emit(self, type, **fields):
        self.events.append({"type": type, **fields})

    def progress(self, frac, msg=""):
        self.emit("progress", frac=frac, msg=msg)

    def cancelled(self):
        return False

    def save_checkpoint(self, model, config):
        from core.checkpoints import save_checkpoint

        save_checkpoint(self.dir / "model.safetensors", model, config)


def test_a_short_run_learns_writes_samples_and_saves_a_loadable_checkpoint(tmp_path, poems, monkeypatch):
    from core import data
    from core.checkpoints import load_into, read_checkpoint
    from core.lab import RunSpec

    monkeypatch.setattr(data, "load", lambda name: poems)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    q = get("q5")
    ctx = FakeContext(tmp_path)
    n_windows = sum(len(p) + 2 for p in poems[0]) / TINY["context"]
    spec = RunSpec("q5", "poetry", {**TINY, "data_fraction": min(1.0, 300 / n_windows)})  # ~300 windows
    result = q.run(spec, ctx)
    tests = [e["loss"] for e in ctx.events if e["type"] == "test"]
    ln_v = math.log(result["vocab_size"])
    assert abs(tests[0] - ln_v) < 0.3               # starts near uniform over the vocabulary
    assert result["test_loss"] == tests[-1] < ln_v - 1.0  # well below ln(vocab)
    per_epoch = [e for e in ctx.events if e["type"] == "artifact" and e["kind"] == "text" and not e.get("final")]
    assert [e["epoch"] for e in per_epoch] == [1, 2] and all(len(e["texts"]) == 2 for e in per_epoch)
    assert len(result["samples"]) == 5 and all(len(s) <= 128 for s in result["samples"])

    state, config, _ = read_checkpoint(tmp_path / "model.safetensors")
    model, tok = load_into(Transformer.from_config(config), state), tokenizer_from_config(config)
    assert tok.vocab_size == result["vocab_size"]
    texts, _ = generate(model, tok, 2, 20, prompt="The ")
    assert all(t.startswith("The ") for t in texts)


def test_notebook_function_returns_losses_and_five_samples(monkeypatch):
    from core import homework
    from core.questions import q5

    monkeypatch.setitem(q5.PRESETS, "homework", {**TINY, "epochs": 1})
    train = ["Shall I compare thee to a summer's day?\nThou art more lovely."] * 40
    tr, te, samples = homework.q5_a(train, ["Thou art more lovely and more temperate."])
    assert tr.ndim == 1 and len(tr) > 0 and te.shape == (2,)
    assert te[-1] < te[0]
    assert len(samples) == 5 and all(isinstance(s, str) and len(s) <= 128 for s in samples)


def test_model_config_round_trips_through_transformer_from_config():
    tok = CharTokenizer.from_texts(["xyz\n"])
    q = get("q5")
    hp = q.preset("quick")
    model, tok2 = Transformer.from_config(model_config(tok, hp)), tokenizer_from_config(model_config(tok, hp))
    assert tok2.chars == tok.chars and model.config.block_size == hp["context"]
    assert model.config.vocab_size == tok.vocab_size and model.config.n_heads == hp["heads"]


def test_page_writes_with_a_finished_run(runs_dir, poems, monkeypatch):
    """The page renders; with a finished (tiny) run it loads its checkpoint and continues a long prompt."""
    from streamlit.testing.v1 import AppTest

    from core import checkpoints, data
    from core.lab import RunSpec, store as RunStore
    from core.engine.worker import main as run_worker
    from tests.test_app import ROOT

    monkeypatch.setattr(data, "load", lambda name: poems)  # the worker and the page run in this process
    store = RunStore(runs_dir)
    n_windows = sum(len(p) + 2 for p in poems[0]) / TINY["context"]
    rid = store.submit(RunSpec("q5", "poetry", {**TINY, "epochs": 1, "data_fraction": min(1.0, 100 / n_windows)}),
                       start=False)
    assert run_worker(str(runs_dir / rid)) == 0 and store.status(rid)["state"] == "done"

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/q5_poetry.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Samples" in m.value or "final samples" in m.value for m in at.markdown)
    intro = next(m.value for m in at.markdown if "**Training:**" in m.value)   # the run's own window length
    assert f"windows of {TINY['context']} tokens" in intro and "windows of 128" not in intro and "rough guide" in intro
    models = at.selectbox(key="q5:source")
    shipped = checkpoints.find(question="q5", dataset="poetry")
    assert models.value == (f"pretrained:{shipped[0]['name']}" if shipped else f"run:{rid}")  # shipped by default
    assert len(models.options) == 1 + len(shipped)
    assert any(rid in o and "newest" in o for o in models.options)
    models.set_value(f"run:{rid}").run()
    assert at.text_area(key="q5:prompt").max_chars == 2000           # what a learner types is bounded
    at.text_area(key="q5:prompt").set_value("Shall I compare thee ✓ " * 3)
    next(b for b in at.button if b.label == "Write").click().run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    assert "'✓' → ' '" in warnings and "last 31 characters" in warnings

    def poems():
        return [m.value for m in at.markdown if "margin-bottom:0.6em" in m.value]

    written = poems()                      # the run's own samples (in its monitor) and the 5 just written
    next(b for b in at.button if b.label == "Draw the highlighted token").click().run()   # the next-character view
    assert not at.exception and poems() == written                                      # the poems stay


def test_the_shipped_checkpoint_reproduces_its_test_loss_and_writes():
    from core import checkpoints, data
    from core.checkpoints import load_into, load_pretrained
    from core.text import poem_windows
    from core.train import evaluate

    entries = checkpoints.find(question="q5", dataset="poetry")
    if not entries:
        pytest.skip("no Q5 checkpoint is shipped")
    try:
        _, test = data.load("poetry")
    except data.DataNotFetched:
        pytest.skip("the poetry set is not fetched")
    state, config, entry = load_pretrained(entries[0]["name"])
    model, tok = load_into(Transformer.from_config(config), state), tokenizer_from_config(config)
    got = evaluate(model, loss_fn, poem_windows(tok, test, config["context"], PAD), 64)
    assert abs(got - entry["test_loss"]) < 0.01
    texts, notices = generate(model, tok, 5, 128, temperature=0.8)
    assert len(texts) == 5 and all(len(t) <= 128 for t in texts) and not notices
