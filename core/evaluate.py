"""Recompute a shipped checkpoint's test loss on its full test set, in the unit its manifest entry records.

    recompute("q2a-shapes")    # -> 0.04052... nats/dim, to compare with the manifest's test_loss
    recompute("q2a-shapes", images="new")   # only the test images that are not exactly in the training set

The same losses the training loop reports (core.train.evaluate over the whole test set), so a match says the
checkpoint, the data and the code agree.
"""
from __future__ import annotations

import torch

from . import checkpoints, data, questions, sources


def recompute(name: str, device: str = "cpu", batch_size: int = 256, progress: bool = False,
              images: str = "all") -> float:
    """images (questions that split them: Q2/Q3): "all" test images, only the "new" ones (not exactly in the
    training set), or only the "repeated" ones. The checkpoint's question (or instrument) scores it: its
    `test_loss`."""
    entries = checkpoints.find(name=name)
    if not entries:
        raise KeyError(f"no shipped checkpoint named {name!r}")
    e = entries[0]
    q, ds = e["question"], e["dataset"]
    try:
        owner = questions.kind(q)
    except KeyError:
        raise KeyError(f"no test-loss recipe for {q} checkpoints") from None
    model, config = sources.load(f"pretrained:{name}", device)
    loaded = data.load(ds, version=e.get("data_version"))  # an older generator's images if trained on those
    train, test = loaded[:2]
    if images != "all":
        if not owner.splits_new_images or images not in ("new", "repeated"):
            raise ValueError(f"images must be all, new or repeated (new/repeated for Q2/Q3 only); got {images!r}")
        rep = data.repeats(train, test)
        test = test[rep if images == "repeated" else ~rep]
    with torch.no_grad():
        return owner.test_loss(model, config, test, loaded, device, batch_size)
