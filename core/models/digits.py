"""A small digit classifier for coloured 28x28 images: Q6's measuring instrument, not a model the lab teaches.

Q6 asks whether an image drawn for a caption shows the caption's digit. The colours of `mnist-v2` images vary
(15 colours x 5 modifiers, digit and background), so the classifier does not read colours at all: it sees each
pixel's distance from the image's most common colour (the background), `shape_map`, a grey picture of the digit
whatever its colours. Two 3x3 conv layers with max-pooling and one hidden layer (~0.2 M parameters); trained on the
`mnist-v2` training images (core.questions.q6.train_digit_classifier), its test accuracy is stored with it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from core.models import evaluating


def shape_map(images) -> torch.Tensor:
    """(N,28,28,3) ints 0..3 (or decoder floats) -> (N,1,28,28) floats in 0..1: each pixel's L1 distance from the
    image's most common colour, divided by 9 (the largest distance in 2-bit RGB)."""
    x = torch.as_tensor(np.asarray(images)).float().round().clamp(0, 3)
    n = len(x)
    flat = x.reshape(n, -1, 3)
    code = (flat[..., 0] * 16 + flat[..., 1] * 4 + flat[..., 2]).long()  # (N, HW) colour ids 0..63
    counts = torch.zeros(n, 64, dtype=torch.long).scatter_add_(1, code, torch.ones_like(code))
    top = counts.argmax(1)
    bg = torch.stack([top // 16, (top // 4) % 4, top % 4], 1).float()  # (N, 3)
    dist = (flat - bg[:, None]).abs().sum(-1) / 9.0
    return dist.reshape(n, 1, *x.shape[1:3])


class DigitClassifier(nn.Module):
    def __init__(self, channels: int = 32, hidden: int = 128):
        super().__init__()
        self.channels, self.hidden = channels, hidden
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * channels * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, maps):  # (N,1,28,28) shape maps -> (N,10) logits
        return self.net(maps)

    @torch.no_grad()
    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
        """(N,28,28,3) images -> (N,) predicted digits."""
        device = next(self.parameters()).device
        with evaluating(self):
            out = [self(shape_map(images[i:i + batch_size]).to(device)).argmax(1).cpu()
                   for i in range(0, len(images), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros(0, np.int64)
