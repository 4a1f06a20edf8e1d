"""Recompute a shipped checkpoint's test loss on its full test set, in the unit its manifest entry records.

    recompute("q2a-shapes")    # -> 0.04052... nats/dim, to compare with the manifest's test_loss
    recompute("q2a-shapes", images="new")   # only the test images that are not exactly in the training set

The same losses the training loop reports (core.train.evaluate over the whole test set), so a match says the
checkpoint, the data and the code agree.
"""
from __future__ import annotations

import torch

from . import checkpoints, data, sources
from .train import evaluate


def recompute(name: str, device: str = "cpu", batch_size: int = 256, progress: bool = False,
              images: str = "all") -> float:
    """images (Q2/Q3 only): "all" test images, only the "new" ones (not exactly in the training set), or only the
    "repeated" ones."""
    entries = checkpoints.find(name=name)
    if not entries:
        raise KeyError(f"no shipped checkpoint named {name!r}")
    e = entries[0]
    q, ds = e["question"], e["dataset"]
    model, config = sources.load(f"pretrained:{name}", device)
    loaded = data.load(ds, version=e.get("data_version"))  # an older generator's images if trained on those
    train, test = loaded[:2]
    if images != "all":
        if q not in ("q2a", "q2b", "q3a", "q3b") or images not in ("new", "repeated"):
            raise ValueError(f"images must be all, new or repeated (new/repeated for Q2/Q3 only); got {images!r}")
        rep = data.repeats(train, test)
        test = test[rep if images == "repeated" else ~rep]
    with torch.no_grad():
        if q in ("q2a", "q2b"):
            from .models.pixelcnn import loss

            return evaluate(model, loss, torch.as_tensor(test), batch_size, device)
        if q in ("q3a", "q3b"):
            from .questions.q3 import encode, pixel_loss

            return evaluate(model, pixel_loss, encode(test), batch_size, device)
        if q == "q4a":
            import torch.nn.functional as F

            def recon(m, x):
                x_hat = m(x)[0]
                return F.mse_loss(x_hat, x.float().to(x_hat.device))

            return evaluate(model, recon, torch.as_tensor(test), batch_size, device)
        if q == "q4b":
            from .questions import q4

            tok = q4.load_tokenizer(config["tokenizer"], device)
            tokens = q4.tokenize(tok, test)
            return evaluate(model, lambda m, s: m.loss(s), q4.with_bos(tokens, tok.n_embeddings), batch_size, device)
        if q == "q5":
            from .questions import q5
            from .text import poem_windows

            tok = q5.tokenizer_from_config(config)
            rows = poem_windows(tok, test, int(config.get("block_size") or config["context"]), q5.PAD)
            return evaluate(model, q5.loss_fn, rows, 64, device)
        if q == "q6":
            from .questions import q4, q6

            tok = q4.load_tokenizer(config["tokenizer"], device)
            captions = loaded[3]
            vocab = q6.vocab_from_config(config)
            both = q6.pair_layouts(vocab, q4.tokenize(tok, test), [vocab.encode(c) for c in captions])
            return evaluate(model, q6.loss_fn, both, batch_size, device)
        if q == "digits":
            from torch.nn.functional import cross_entropy

            from .models.digits import shape_map
            from .questions.q6 import labels_of

            captions = loaded[3]
            xy = (shape_map(test), torch.as_tensor(labels_of(captions)))
            return evaluate(model, lambda m, b: cross_entropy(m(b[0]), b[1]), xy, batch_size, device)
    raise KeyError(f"no test-loss recipe for {q} checkpoints")
