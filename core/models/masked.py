"""Masked convolutions for PixelCNN: the mask (the lesson), a plain reference and a faster cropped version.

Pixels are generated in raster order (row by row, left to right). A masked k x k convolution may only look at
pixels that come *before* the centre: every row above it, and the centre row left of the centre.
  type A: the centre pixel is excluded (the first layer: a pixel may not see itself)
  type B: the centre pixel is included (later layers: the centre already holds only earlier pixels)
Colour channels are independent given the previous pixels (Q2b), so the masks depend on spatial position only:
all channels of pixel i are predicted from all channels of pixels < i.

Both implementations share one parameterisation (a full k x k `weight`, the mask applied in forward), so a
state_dict moves between them unchanged (p = k // 2):
  plain: conv2d(x, weight * mask, padding=p)                  k x k taps, more than half of them always zero
  fast : conv2d(pad_top(x, p), (weight * mask)[:, :, :p+1], padding=(0, p))
         the bottom p rows of the kernel are always zero, so they are cropped away; p zero rows on top keep the
         output the input's size. Type B 7x7: 4x7 = 28 taps instead of 49 (25 of them count).
A layer may apply a ReLU to its input first (relu_input=True); the fast version then writes relu(x) straight
into the top-padded buffer (one pass instead of a ReLU and a copy).
A step mode (used by the fast sampler) computes the output at a single position (r, c) from a cache of the
layer's input, so drawing one pixel costs one position per layer instead of a whole image. The caches live in a
StepState made current (a context variable) for the sampling call only: nothing changes on the modules, so one
served model can be sampled by many sessions (threads) at once.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def mask_array(kind: str, k: int) -> np.ndarray:
    """(k, k) bool mask of a type 'A' or 'B' masked convolution; True = the tap may be non-zero."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    if k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be odd and >= 1, got {k}")
    c = k // 2
    m = np.zeros((k, k), dtype=bool)
    m[:c, :] = True                       # every row above the centre
    m[c, :c + (kind == "B")] = True       # centre row: left of the centre (+ the centre for type B)
    return m


class StepState:
    """One sampling call's step mode: the position (r, c) being computed, whether known top rows are being filled
    in (a normal forward that also fills the caches), and each layer's input cache and flattened cropped weight.
    Layers read it only while it is current (`StepState.use`), in the calling thread alone."""
    current: ContextVar["StepState | None"] = ContextVar("pixelcnn_step_state", default=None)

    def __init__(self):
        self.pos, self.filling = (0, 0), False
        self.layers = {}                                    # MaskedConv2d -> (cache, weight)

    def start(self, layer: "MaskedConv2d", n: int, H: int, W: int):
        """A zero-padded cache of the layer's input for n images of size H x W (k > 1 only)."""
        p = layer.kernel_size[0] // 2
        cache = layer.weight.new_zeros(n, layer.in_channels, H + p, W + 2 * p)   # pad: top p, sides p
        self.layers[layer] = (cache, layer.cropped_weight().reshape(layer.out_channels, -1))   # (Cout, Cin*(p+1)*k)

    @contextmanager
    def use(self):
        token = StepState.current.set(self)
        try:
            yield self
        finally:
            StepState.current.reset(token)


def _memory_format(x):
    return torch.channels_last if x.dim() == 4 and not x.is_contiguous() and \
        x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


class ReluPadTop(torch.autograd.Function):
    """relu(x) with p zero rows on top, written in one pass (B, C, H, W) -> (B, C, H + p, W)."""

    @staticmethod
    def forward(ctx, x, p: int):
        B, C, H, W = x.shape
        out = torch.empty(B, C, H + p, W, dtype=x.dtype, device=x.device, memory_format=_memory_format(x))
        out[:, :, :p].zero_()
        torch.clamp_min(x, 0, out=out[:, :, p:])
        ctx.save_for_backward(out)
        ctx.p = p
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad[:, :, ctx.p:], out[:, :, ctx.p:], 0), None


class MaskedConv2d(nn.Conv2d):
    """k x k convolution with a type A/B mask. Output has the input's spatial size (zero padding).

    fast=False: the plain reference (full kernel times mask); fast=True: the kernel cropped to its upper
    k//2+1 rows. Same parameters either way; `fast` may be flipped at any time. relu_input: conv(relu(x)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, kind: str = "B", fast: bool = True,
                 relu_input: bool = False, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.kind, self.fast, self.relu_input = kind, fast, relu_input
        self.register_buffer("mask", torch.from_numpy(mask_array(kind, kernel_size)).float()[None, None],
                             persistent=False)  # (1, 1, k, k)

    def extra_repr(self):
        return super().extra_repr() + f", kind={self.kind}, fast={self.fast}, relu_input={self.relu_input}"

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask                          # (Cout, Cin, k, k)

    def cropped_weight(self) -> torch.Tensor:
        p = self.kernel_size[0] // 2
        return self.weight[:, :, :p + 1] * self.mask[:, :, :p + 1]   # (Cout, Cin, p+1, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:      # (B, Cin, H, W) -> (B, Cout, H, W)
        state = StepState.current.get()
        if state is not None and self in state.layers:     # step mode: only within a fast sampling call
            return self.step(x, state)
        return self.conv(x)

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size[0] // 2
        if p == 0 or not self.fast:                           # 1x1 type B is a plain 1x1 conv
            x = F.relu(x) if self.relu_input else x
            return F.conv2d(x, self.masked_weight(), self.bias, padding=p)
        x = ReluPadTop.apply(x, p) if self.relu_input else F.pad(x, (0, 0, p, 0))   # (B, Cin, H + p, W)
        return F.conv2d(x, self.cropped_weight(), self.bias, padding=(0, p))

    # ------------------------------------------------------------------ step mode (incremental sampling)
    def write(self, state: StepState, r: int, c: int, value: torch.Tensor):
        """Store what this layer convolves (its input, after the ReLU if relu_input) at (r, c): value (n, Cin)."""
        p = self.kernel_size[0] // 2
        state.layers[self][0][:, :, r + p, c + p] = value

    def step(self, x: torch.Tensor, state: StepState) -> torch.Tensor:
        """Step mode: x is the layer's input at (r, c) only: (n, Cin, 1, 1) -> output there (n, Cout, 1, 1).

        While filling (known top rows) x holds whole rows 0..R-1: they are stored and convolved normally.
        Otherwise store x at (r, c) and convolve the cached window of rows r-p..r around column c. Exact,
        because every value it reads is final: rows above were completed earlier, in row r the columns < c
        were computed at their own step, and the columns > c only meet masked-out (zero) taps.
        """
        p = self.kernel_size[0] // 2
        cache, weight = state.layers[self]
        xr = F.relu(x) if self.relu_input else x              # what the convolution sees
        if state.filling:
            R, W = x.shape[2], x.shape[3]
            cache[:, :, p:p + R, p:p + W] = xr
            return self.conv(x)
        r, c = state.pos
        self.write(state, r, c, xr[:, :, 0, 0])
        window = cache[:, :, r:r + p + 1, c:c + 2 * p + 1]    # (n, Cin, p+1, k)
        out = F.linear(window.reshape(len(window), -1), weight, self.bias)   # (n, Cout)
        return out[:, :, None, None]
