"""Every question's loss is in the course's unit: a model that spreads its probability evenly over the V values of
one unit scores exactly ln V. Per sub-pixel for the PixelCNN (Q2: V = 2 or 4 values per channel), per pixel token
for iGPT (Q3b: one token of 64 colours, its plot starts near ln 64), per VQ token (Q4b, Q6), per character (Q5).
Each loss is the function the question's training loop uses, on a model whose output layer is zeroed."""
import math

import numpy as np
import pytest
import torch

from core.models.transformer import Transformer
from core.questions import get

UNITS = {"q1a": "nats/dim", "q2a": "nats/dim", "q2b": "nats/dim", "q3a": "nats/dim", "q3b": "nats/token",
         "q4b": "nats/token", "q5": "nats/char", "q6": "nats/token"}


def flat_transformer(config):
    model = Transformer.from_config(config).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    return model


@pytest.mark.parametrize("key", sorted(UNITS))
def test_the_question_says_its_unit(key):
    assert get(key).unit == UNITS[key]


def test_q1_histogram_starts_at_ln_d():
    from core.models.discrete1d import Histogram, nll

    assert nll(Histogram(20), torch.arange(20)).item() == pytest.approx(math.log(20))


@pytest.mark.parametrize("channels,values", [(1, 2), (3, 4)])
def test_q2_pixelcnn_is_per_sub_pixel(channels, values):
    from core.models.pixelcnn import PixelCNN, loss

    model = PixelCNN(in_channels=channels, n_values=values, filters=8, n_layers=2, kernel_size=3).eval()
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
    x = torch.randint(0, values, (4, 6, 6, channels))
    assert loss(model, x).item() == pytest.approx(math.log(values), rel=1e-5)   # ln 4, not 3 ln 4, for colour


@pytest.mark.parametrize("shape,values", [((6, 6, 1), 2), ((6, 6, 3), 64)])
def test_q3_igpt_is_per_pixel_token(shape, values):
    from core.questions.q3 import encode, model_config, pixel_loss

    config = model_config(shape, {"d_model": 16, "heads": 2, "layers": 1}, "q3b" if shape[2] == 3 else "q3a", "")
    model = flat_transformer(config)
    x = np.random.default_rng(0).integers(0, 2 if shape[2] == 1 else 4, (4, *shape)).astype(np.uint8)
    # the vocabulary also holds <bos>, so an even spread over it scores ln(values + 1) per pixel token
    assert config["vocab_size"] == values + 1
    assert pixel_loss(model, encode(x)).item() == pytest.approx(math.log(values + 1), rel=1e-5)  # ~4.17, not 1.39


def test_q4b_is_per_vq_token():
    from core.questions.q4 import transformer_config, with_bos

    config = transformer_config({"d_model": 16, "heads": 2, "layers": 1}, 1024)
    model = flat_transformer(config)
    seq = with_bos(np.random.default_rng(0).integers(0, 1024, (3, 49)), 1024)
    assert model.loss(seq).item() == pytest.approx(math.log(1025), rel=1e-5)


def test_q5_is_per_character():
    from core.questions.q5 import PAD, loss_fn, model_config
    from core.text import CharTokenizer, poem_windows

    tok = CharTokenizer.from_texts(["abc de", "fgh"])
    model = flat_transformer(model_config(tok, {"context": 16, "d_model": 16, "heads": 2, "layers": 1}))
    loss, n = loss_fn(model, poem_windows(tok, ["abc de", "fgh"], 16, PAD))
    assert n == len("abc de") + 1 + len("fgh") + 1                    # every character and each <eos>
    assert loss.item() == pytest.approx(math.log(tok.vocab_size), rel=1e-5)


def test_q6_is_per_predicted_token():
    from core.questions import q6

    vocab = q6.Vocab(("dark", "five", "green", "magenta", "on", "light"), 1024)
    model = flat_transformer(q6.transformer_config({"d_model": 16, "heads": 2, "layers": 1}, vocab))
    both = q6.pair_layouts(vocab, np.zeros((2, 49), int), [vocab.encode("light green five on dark magenta")] * 2)
    loss, _ = q6.loss_fn(model, both)
    assert loss.item() == pytest.approx(math.log(vocab.size), rel=1e-5)
