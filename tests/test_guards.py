"""Guards for a classroom on one server: shared models sampled by many sessions at once, a memory estimate that
refuses runs too big for a worker, checkpoints kept before the final sampling, and a cancel seen in every phase."""
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core import memory, sources
from core.context import RunContext
from core.models import pixelcnn, transformer
from core.questions import REGISTRY, get
from core.questions.base import Data
from core.train import RunCancelled, TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent


def together(fn, k: int = 3) -> list:
    """fn() in k threads that start at the same moment (a barrier); -> their k results (re-raises a failure)."""
    barrier, out, errors = threading.Barrier(k), [None] * k, []

    def work(i):
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


# ------------------------------------------------------------------------------------------- shared models
@pytest.fixture(scope="module")
def shapes_pixelcnn():
    return sources.load("pretrained:q2a-shapes")   # (model in eval mode, config), as the server caches it


def test_one_pixelcnn_sampled_by_many_threads_at_once(shapes_pixelcnn):
    model, config = shapes_pixelcnn
    H, W, _ = config["image_shape"]

    def draw(prefix=None):
        return pixelcnn.sample(model, 4, (H, W), torch.Generator().manual_seed(7), prefix=prefix)

    ref = draw()
    for got in together(draw):
        assert torch.equal(got, ref)
    prefix = ref[:, :H // 2].flip(0).contiguous()    # completions of other top halves
    ref = draw(prefix)
    for got in together(lambda: draw(prefix)):
        assert torch.equal(got, ref)
    assert not model.training   # a served model stays in eval mode


def test_sampling_restores_training_mode():
    torch.manual_seed(0)
    model = pixelcnn.PixelCNN(filters=4, n_layers=1, kernel_size=3).train()
    pixelcnn.sample(model, 1, (3, 3))
    assert model.training and all(m.training for m in model.modules())


def test_one_transformer_sampled_by_many_threads_at_once():
    model, config = sources.load("pretrained:q3a-shapes")

    def draw():
        return transformer.sample(model, 2, 60, prefix=[config["bos"]], generator=torch.Generator().manual_seed(3),
                                  logits_hook=transformer.forbid(config["bos"]))

    ref = draw()
    for got in together(draw):
        assert torch.equal(got, ref)
    assert not model.training


# ------------------------------------------------------------------------------------------- the memory guard
TRAINING = [k for k in REGISTRY if k != "q3c"]   # the Q3c race trains nothing
SAID = re.compile(r"this configuration needs about [\d.]+ GB to train \(≈ [\d.]+ [MB] parameters, activations for a "
                  r"batch of \d+\); one run may use 8\.0 GB here: lower batch size, .+")


def largest(q) -> dict:
    """Every field at its upper bound (the bigger choice, switches on)."""
    hp = q.defaults()
    for f in q.fields:
        if f.kind in ("int", "float") and f.hi is not None:
            hp[f.name] = type(f.default)(f.hi)
        elif f.kind == "choice" and "full" in f.choices:
            hp[f.name] = "full"
    return hp


@pytest.fixture
def limit_8gb(monkeypatch):
    monkeypatch.setenv("ARLAB_WORKER_MEM_MB", "8192")


@pytest.mark.parametrize("key", TRAINING)
def test_the_largest_configuration_is_refused_with_the_estimate(key, limit_8gb):
    q = get(key)
    for dataset in q.datasets:
        if key in ("q1a", "q1b"):   # a few parameters: nothing Q1 allows comes near any limit
            assert q.memory(largest(q), dataset).total < memory.BASE + memory.STEP + memory.MB
            continue
        said = [m for m in q.check(largest(q), dataset).values() if "to train" in m]
        assert len(said) == 1, q.check(largest(q), dataset)
        assert SAID.fullmatch(said[0]), said[0]


@pytest.mark.parametrize("key", TRAINING)
def test_every_preset_fits_in_8gb(key, limit_8gb):
    q = get(key)
    for dataset in q.datasets:
        for preset in q.presets:
            hp = q.preset(preset)
            assert not [m for m in q.check(hp, dataset).values() if "to train" in m], (preset, dataset)
            assert q.memory(hp, dataset).total < 8 * memory.GB


def test_worker_limit_from_the_setting_or_the_machine(monkeypatch):
    monkeypatch.setenv("ARLAB_WORKER_MEM_MB", "1536")
    assert memory.worker_limit_bytes() == 1536 * memory.MB
    monkeypatch.delenv("ARLAB_WORKER_MEM_MB")
    monkeypatch.setattr(memory, "gpu_bytes", lambda: 0)
    monkeypatch.setenv("ARLAB_SLOTS", "2")
    assert memory.worker_limit_bytes() == int(0.6 * memory.ram_bytes() / 2)
    monkeypatch.setattr(memory, "gpu_bytes", lambda: 80 * memory.GB)
    monkeypatch.delenv("ARLAB_SLOTS")   # a GPU is shared by 4 runs unless said otherwise, as the queue does
    assert memory.worker_limit_bytes() == 20 * memory.GB


def test_parameter_counts_are_the_models():
    from core.models.vqvae import VQVAE, VQVAEConfig

    def n(m):
        return sum(p.numel() for p in m.parameters())

    for cfg in (dict(in_channels=1, n_values=2, filters=6, n_layers=2, kernel_size=3, residual=False, layer_norm=False),
                dict(in_channels=3, n_values=4, filters=6, n_layers=2, kernel_size=5, residual=True, layer_norm=True)):
        est = memory.pixelcnn(1, (8, 8, cfg["in_channels"]), **{k: v for k, v in cfg.items() if k != "in_channels"})
        assert est.params == n(pixelcnn.PixelCNN(**cfg))
    tf = transformer.Transformer(transformer.TransformerConfig(vocab_size=11, block_size=9, d_model=16, n_layers=2))
    assert memory.transformer(1, 8, 16, 2, 11).params == n(tf)
    vq = VQVAEConfig.preset("small", n_embeddings=16, embedding_dim=8)
    assert memory.vqvae(1, vq).params == n(VQVAE(vq))


MEASURE = """
import json, sys, torch
torch.set_num_threads(1)
from core.models.pixelcnn import PixelCNN, loss
from core.models.transformer import Transformer, TransformerConfig
def rss(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
kind, B = sys.argv[1], 32
if kind == "conv":
    x = torch.randint(0, 2, (B, 20, 20, 1))
    build, lf = lambda: PixelCNN(filters=32, n_layers=3, kernel_size=7), loss
else:
    x = torch.randint(0, 3, (B, 101))
    build = lambda: Transformer(TransformerConfig(vocab_size=3, block_size=101, d_model=64, n_heads=4, n_layers=2))
    lf = lambda m, s: m.loss(s)
lf(build(), x[:2]).backward()                        # warm up the kernels
open("/proc/self/clear_refs", "w").write("5")        # reset the peak
base = rss("VmRSS")
m = build()
opt = torch.optim.Adam(m.parameters())
for _ in range(2):
    opt.zero_grad()
    lf(m, x).backward()
    opt.step()
print(rss("VmHWM") - base)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc")
@pytest.mark.parametrize("kind", ["conv", "transformer"])
def test_estimate_is_near_a_measured_peak(kind):
    """One small net trained for two steps in a fresh process: its peak memory against the estimate."""
    out = subprocess.run([sys.executable, "-c", MEASURE, kind], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    measured = int(out.stdout.split()[-1])
    est = (memory.pixelcnn(32, (20, 20, 1), 2, 32, 3, 7, False, False) if kind == "conv"
           else memory.transformer(32, 100, 64, 2, 3))
    estimated = memory.STEP + 16 * est.params + est.activations
    assert measured / 3 < estimated < measured * 3, (measured, estimated)


# ------------------------------------------------------------------------------------------ saved, then sampled; cancel
class StopAfterTraining(RunContext):
    """Records what the run does; a stop is asked for as soon as the checkpoint is saved."""

    def __init__(self):
        self.calls = []

    def emit(self, type, **fields):
        self.calls.append(type)

    def save_checkpoint(self, model, config, name="model", **meta):
        self.calls.append("save")
        return name

    def cancelled(self):
        return "save" in self.calls


def tiny_tokenizer():
    from core.models.vqvae import VQVAE, VQTokenizer, VQVAEConfig

    torch.manual_seed(0)
    return VQTokenizer(VQVAE(VQVAEConfig.preset("small", n_embeddings=8, embedding_dim=4)))


def tiny_data(key):
    rng = np.random.default_rng(0)
    if key in ("q2a", "q3a"):
        x = rng.integers(0, 2, (16, 6, 6, 1)).astype(np.uint8)
        return Data(x, x[:8])
    if key in ("q2b", "q3b"):
        x = rng.integers(0, 4, (16, 6, 6, 3)).astype(np.uint8)
        return Data(x, x[:8])
    if key == "q5":
        poems = ["roses are red\nviolets are blue", "the sea, the sea\nagain and again", "a short one"] * 3
        return Data(poems, poems[:2])
    x = rng.integers(0, 4, (16, 28, 28, 3)).astype(np.uint8)
    if key == "q4b":
        return Data(x, x[:8], tokenizer=tiny_tokenizer())
    from core.data.colour_mnist import caption, draw_codes

    caps = [caption(c, y) for c, y in zip(draw_codes(16, rng), rng.integers(0, 10, 16))]
    return Data((x, caps), (x, caps), tokenizer=tiny_tokenizer())


TINY = {"q2a": {"filters": 4, "layers": 1, "kernel_size": 3, "epochs": 1, "batch_size": 8, "subset": 1.0},
        "q2b": {"filters": 4, "blocks": 1, "kernel_size": 3, "epochs": 1, "batch_size": 8, "subset": 1.0},
        "q5": {"context": 16, "d_model": 8, "heads": 2, "layers": 1, "epochs": 1, "batch_size": 4,
               "samples_per_epoch": 0}}
TRANSFORMER = {"d_model": 8, "heads": 2, "layers": 1, "epochs": 1, "batch_size": 8, "warmup_steps": 0}


@pytest.mark.parametrize("key", ["q2a", "q2b", "q3a", "q3b", "q4b", "q5", "q6"])
def test_the_model_is_saved_before_the_final_samples(key, monkeypatch):
    q = get(key)
    monkeypatch.setattr(q, "load_data", lambda dataset, hp, ctx: tiny_data(key))
    spec = SimpleNamespace(hparams=TINY.get(key, TRANSFORMER), dataset=q.datasets[0], seed=0)
    ctx = StopAfterTraining()
    with pytest.raises(RunCancelled, match="cancelled while (drawing|writing) the final samples"):
        q.run(spec, ctx)   # stopped at the first sampling step: training is kept
    assert "train" in ctx.calls and ctx.calls.index("save") > max(i for i, c in enumerate(ctx.calls) if c == "test")


def test_a_cancel_is_seen_while_evaluating():
    from core.models.discrete1d import Histogram, nll

    class StopAfterEpoch(RunContext):   # asked to stop once the first epoch's two minibatches are done
        steps = 0

        def emit(self, type, **fields):
            self.steps += type == "train"

        def cancelled(self):
            return self.steps >= 2

    data = torch.arange(20) % 5
    with pytest.raises(RunCancelled, match="cancelled while evaluating epoch 1"):
        fit(Histogram(5), nll, data, data, TrainConfig(epochs=3, batch_size=10), StopAfterEpoch())
