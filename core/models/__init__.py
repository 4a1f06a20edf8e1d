"""The models the lab teaches (histogram, mixture of logistics, PixelCNN, transformer, VQ-VAE), and one helper
every sampler shares."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def evaluating(model):
    """Eval mode while inside, the mode before after. A model already in eval mode (every served one) is left
    untouched, so many threads may sample one shared model at once."""
    was = model.training
    if was:
        model.eval()
    try:
        yield model
    finally:
        if was:
            model.train()
