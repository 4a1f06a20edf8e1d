"""The homework notebook's calls, one per question, so a student can drop ours into the notebook.

Each trains in-process with the question's homework preset (on the best device present) and returns what the
notebook plots. They are thin: the work lives in core.questions.
"""
from __future__ import annotations

import numpy as np

from .device import pick_device
from .questions import get
from .questions.base import Data


def _train(key, data: Data, hp: dict | None = None):
    """Train question `key` in-process with its homework preset (+ hp) -> Trained."""
    q = get(key)
    return q.train(data, q.hparams(hp, "homework"), seed=0, device=pick_device())


def _curves(t):
    return np.array(t.result.train_losses), np.array(t.result.test_losses)


def _train_1d(key, train_data, test_data, d, dset_id):
    t = _train(key, Data(train_data, test_data, d=d))
    return (*_curves(t), get(key).distribution(t.model))


def q1_a(train_data, test_data, d, dset_id):
    """Histogram: (train losses per minibatch, test losses (epochs+1), distribution (d,) summing to 1)."""
    return _train_1d("q1a", train_data, test_data, d, dset_id)


def q1_b(train_data, test_data, d, dset_id):
    """Discretized mixture of 4 logistics: same returns as q1_a."""
    return _train_1d("q1b", train_data, test_data, d, dset_id)


def q5_a(train_text, test_text):
    """Character-level poet: (train losses per minibatch, test losses (epochs+1) in nats/char,
    5 unconditional samples of up to 128 characters, cut at <eos>). Texts: lists of poems (or one str)."""
    t = _train("q5", Data(train_text, test_text))
    return (*_curves(t), get("q5").final_samples(t.model, t.extras["tokenizer"], get("q5").hparams(None, "homework")))


def q4_a(images, vqvae):
    """Reconstructions (B,H,W,C) uint8 in 0..3: vqvae.decode(vqvae.quantize(images)), rounded and clipped."""
    from .questions.q4 import check_images, to_images

    return to_images(vqvae.decode(vqvae.quantize(check_images(images))))


def q4_b(train_data, test_data, image_shape, dset_id, vqvae):
    """Transformer on <bos> + 49 VQ tokens of `vqvae`: (train losses per minibatch, test losses (epochs+1) in
    nats/token, 100 samples (100,H,W,C) uint8 decoded by vqvae)."""
    from .questions.q4 import N_FINAL, sample_images

    if tuple(image_shape) != (28, 28, 3):
        raise ValueError(f"Q4 works on 28x28x3 images; got image_shape {tuple(image_shape)}")
    t = _train("q4b", Data(train_data, test_data, tokenizer=vqvae, source="notebook"))
    samples, _ = sample_images(t.model, vqvae, N_FINAL, seed=0, temperature=get("q4b").preset("homework")["temperature"])
    return (*_curves(t), samples)



def load_checkpoint(source):
    """(model in eval mode, config) from a checkpoint file (e.g. one downloaded from the app: safetensors with its
    config), a model source ("pretrained:NAME", "run:ID") or a shipped name / run id."""
    from pathlib import Path

    from . import checkpoints, sources

    path = Path(str(source))
    if path.suffix == ".safetensors" and path.is_file():
        state, config, _ = checkpoints.read_checkpoint(path)
        model = checkpoints.load_into(sources.build(config), state, path.name)
        return model.to(pick_device()).eval(), config
    return sources.load(str(source), pick_device())


def load_vqvae(name: str = "mnist-v2"):
    """The `vqvae` object the notebook passes to q4_a, q4_b and q6_a: the tokenizer shipped for a coloured MNIST
    set ("mnist-colored" or "mnist-v2"; also a shipped q4a name or the id of a finished tokenizer run), with
    n_embeddings, quantize((B,28,28,3) ints 0..3) -> (B,7,7) ints and decode((B,7,7)) -> (B,28,28,3) floats."""
    from .questions.q4 import load_tokenizer

    if name in ("mnist-colored", "mnist-v2"):
        return load_tokenizer("pretrained", pick_device(), dataset=name)
    return load_tokenizer(name, pick_device())


def q6_a(train_data, test_data, image_shape, train_text, test_text, image_test_prompt, text_test_prompt, vqvae,
         hp=None):
    """One transformer over caption words and VQ tokens: (train losses per minibatch, test losses (epochs+1) in
    nats per predicted token, and three lists of 9 (image (H,W,C) uint8, caption str) pairs: captions drawn for
    `image_test_prompt` (9 images), images drawn for `text_test_prompt` (9 captions), and unconditional pairs).
    `hp` overrides the homework preset (e.g. {"epochs": 1}). A text prompt with words outside the captions'
    vocabulary raises core.questions.q6.UnknownWords (listing the allowed words) before anything is drawn."""
    if tuple(image_shape) != (28, 28, 3):
        raise ValueError(f"Q6 works on 28x28x3 images; got image_shape {tuple(image_shape)}")
    q = get("q6")
    data = Data((train_data, list(train_text)), (test_data, list(test_text)), tokenizer=vqvae, source="notebook")
    t = _train("q6", data, hp)
    panels = q.panels(t, vqvae, test_data, list(test_text), image_prompts=image_test_prompt,
                      text_prompts=list(text_test_prompt), seed=0, temperature=q.hparams(hp, "homework")["temperature"])
    pairs = {k: list(zip(imgs, caps)) for k, (imgs, caps) in panels.items()}
    return (*_curves(t), pairs["img_conditioned"], pairs["text_conditioned"], pairs["unconditional"])


def _check_shape(data, image_shape):
    """The data's image shape, checked against the notebook's image_shape ((H, W) or (H, W, C); binary images may
    come as (N, H, W) without a channel axis)."""
    shape = tuple(np.asarray(data).shape[1:])
    want = tuple(int(v) for v in image_shape)
    same = want[:2] == shape[:2] and (len(want) < 3 or len(shape) < 3 or want[2] == shape[2])
    if not same or len(shape) not in (2, 3):
        raise ValueError(f"image_shape {want} does not match the data's images {shape}")
    return shape


def _q3_train(key, train_data, test_data, image_shape, hp=None):
    """-> Trained, with the homework preset (+ hp)."""
    _check_shape(train_data, image_shape)
    return _train(key, Data(train_data, test_data), hp)


def q3_a(train_data, test_data, image_shape, dset_id, hp=None):
    """iGPT on binary images (N,H,W,1) in {0,1}: (train losses per minibatch, test losses (epochs+1) in nats/dim,
    100 samples (100,H,W,1) uint8). `hp` overrides the homework preset."""
    from .questions.q3 import N_FINAL, generate

    t = _q3_train("q3a", train_data, test_data, image_shape, hp)
    return (*_curves(t), generate(t.model, t.config, N_FINAL, seed=0))


def q3_b(train_data, test_data, image_shape, dset_id, hp=None):
    """iGPT on colour images (N,H,W,3) in {0..3}, one 64-value token per pixel: same returns as q3_a
    (losses in nats per pixel token, the course's Q3b unit; an untrained model scores ln 64 = 4.16)."""
    from .questions.q3 import N_FINAL, generate

    t = _q3_train("q3b", train_data, test_data, image_shape, hp)
    return (*_curves(t), generate(t.model, t.config, N_FINAL, seed=0))


def q3_c(train_data, test_data, image_shape, dset_id, hp=None, n_samples=100, use_pretrained=True):
    """The KV-cache race on a colour model: (seconds of each of the H*W sampling steps without the cache, with
    the cache, samples without (n,H,W,C) uint8, samples with). The model: the checkpoint shipped for the set
    (dset_id 1 = coloured shapes, 2 = coloured MNIST) if present and `use_pretrained`, else trained here with
    the homework preset (+ `hp`). No cache: ~10+ minutes for 100 coloured MNIST images on a CPU."""
    from . import sources
    from .checkpoints import CheckpointError
    from .questions.q3 import PRETRAINED, compatibility, full_float32, race

    shape = _check_shape(train_data, image_shape)
    model = None
    if use_pretrained:
        try:
            model, config = sources.load(f"pretrained:{PRETRAINED['shapes-colored' if dset_id == 1 else 'mnist-colored']}",
                                         pick_device())
            model = None if compatibility(config, shape) else model
        except (CheckpointError, ValueError):  # none shipped yet: train one
            model = None
    if model is None:
        t = _q3_train("q3b" if shape[-1] == 3 else "q3a", train_data, test_data, image_shape, hp)
        model, config = t.model, t.config
    with full_float32():
        out = race(model, config, n_samples, seed=0)
    return (np.array(out["times_uncached"]), np.array(out["times_cached"]), out["samples_uncached"],
            out["samples_cached"])


def _train_pixelcnn(key, train_data, test_data, image_shape, overrides):
    _check_shape(train_data, image_shape)
    t = _train(key, Data(train_data, test_data), overrides)
    shape = tuple(image_shape)[:2] + (1 if key == "q2a" else 3,)
    return (*_curves(t), get(key).final_samples(t.model, shape))


def q2_a(train_data, test_data, image_shape, dset_id, **overrides):
    """PixelCNN on binary images (N,H,W,1) in {0,1}: (train losses per minibatch, test losses (epochs+1),
    100 samples (100,H,W,1) uint8). Keyword overrides change the homework preset (e.g. epochs=1)."""
    return _train_pixelcnn("q2a", train_data, test_data, image_shape, overrides)


def q2_b(train_data, test_data, image_shape, dset_id, **overrides):
    """PixelCNN on colour images (N,H,W,3) in {0..3}, channels independent given earlier pixels: same returns
    as q2_a, samples (100,H,W,3) uint8."""
    return _train_pixelcnn("q2b", train_data, test_data, image_shape, overrides)
