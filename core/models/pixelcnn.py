"""PixelCNN for binary (Q2a) and colour (Q2b) images: the nets, the loss, sampling, receptive fields.

Images are (B, H, W, C) int tensors with values in {0 .. n_values-1}. The net models
    p(x) = prod_i prod_c p(x_i^c | x_<i)       (colour channels independent given the previous pixels)
with an n_values-way softmax per pixel channel (binary data: a 2-way softmax). Loss: nats per dimension.

  Q2a net: 7x7 type A, five 7x7 type B, two 1x1 type B, ReLU between, 64 filters.
  Q2b net: 7x7 type A, 8 residual blocks (PixelCNN paper fig. 5: 1x1 down to h/2, 7x7 type B, 1x1 up to h),
           layer norm over channels only (per pixel, so the autoregressive property holds), 120 filters.

Sampling: `sample(model, n, shape, generator)` draws pixel by pixel. fast=True (default) computes only what the
next pixel needs: each masked conv keeps a cache of its input, and a step computes one position per layer
(see MaskedConv2d.step). fast=False re-runs the whole net on the whole image for every pixel (the reference).
The caches belong to the call (a StepState), never to the model, and a model already in eval mode is not switched:
one shared (served) model may be sampled from many threads at once.
Both draw from the same uniforms in the same order, so the same generator seed gives the same samples.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.models import evaluating
from core.models.masked import MaskedConv2d, StepState, mask_array

__all__ = ["PixelCNN", "Q2A", "Q2B", "check_args", "loss", "per_pixel_probs", "per_pixel_nll", "sample",
           "receptive_field", "receptive_field_height", "mask_array", "MaskedConv2d", "channel_mask",
           "centre_dependence", "sampler_cache"]

# the homework's nets (spec.md, Q2); the constructor's defaults are Q2A
Q2A = dict(in_channels=1, n_values=2, filters=64, n_layers=5, kernel_size=7, residual=False, layer_norm=False)
Q2B = dict(in_channels=3, n_values=4, filters=120, n_layers=8, kernel_size=7, residual=True, layer_norm=True)


def check_args(in_channels=1, n_values=2, filters=64, n_layers=5, kernel_size=7, residual=False,
               image_shape=None, **_):
    """Raise ValueError with a clear message for a net that cannot be built (or makes no sense) for the data."""
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if n_values < 2:
        raise ValueError(f"n_values (values per channel) must be >= 2, got {n_values}")
    if filters < (2 if residual else 1):
        raise ValueError(f"filters must be >= {2 if residual else 1}, got {filters}"
                         + (" (residual blocks use filters // 2 in the middle)" if residual else ""))
    if n_layers < 0:
        raise ValueError(f"n_layers (type-B layers or residual blocks) must be >= 0, got {n_layers}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a mask needs a centre pixel), got {kernel_size}")
    if image_shape is not None and kernel_size > min(image_shape[:2]):
        raise ValueError(f"kernel_size {kernel_size} is larger than the image {tuple(image_shape[:2])}")


class LayerNormChannels(nn.Module):
    """Layer norm over the channels of each pixel alone: no pixel sees another, so masks stay intact."""
    def __init__(self, channels: int):
        super().__init__()
        self.ln = nn.LayerNorm(channels)

    def forward(self, x):                                   # (B, C, H, W) -> (B, C, H, W), same memory format
        cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        y = self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return y if cl else y.contiguous()


class ResBlock(nn.Module):
    """PixelCNN paper fig. 5: x + 1x1(relu(kxk_B(relu(1x1(relu(norm(x))))))), h -> h/2 -> h/2 -> h.
    Every conv applies the ReLU before it to its own input (relu_input=True)."""
    def __init__(self, h: int, k: int, fast: bool, layer_norm: bool):
        super().__init__()
        self.norm = LayerNormChannels(h) if layer_norm else nn.Identity()
        self.down = MaskedConv2d(h, h // 2, 1, "B", relu_input=True)
        self.conv = MaskedConv2d(h // 2, h // 2, k, "B", fast, relu_input=True)
        self.up = MaskedConv2d(h // 2, h, 1, "B", relu_input=True)

    def forward(self, x):
        return x + self.up(self.conv(self.down(self.norm(x))))


class PixelCNN(nn.Module):
    def __init__(self, in_channels=1, n_values=2, filters=64, n_layers=5, kernel_size=7, residual=False,
                 layer_norm=False, fast=True, channels_last=True, image_shape=None):
        """in_channels: 1 binary / 3 colour; n_values: values per channel (2 or 4); filters: width;
        n_layers: type-B kxk layers (residual=False, Q2a) or residual blocks (residual=True, Q2b);
        layer_norm: per-pixel layer norm over channels; fast: cropped kernels instead of full kernel * mask
        (same parameters, same function); channels_last: activations' memory format (faster on CPU);
        image_shape: (H, W) if known, only to reject a kernel larger than the image."""
        super().__init__()
        check_args(in_channels, n_values, filters, n_layers, kernel_size, residual, image_shape)
        self.config = dict(in_channels=in_channels, n_values=n_values, filters=filters, n_layers=n_layers,
                           kernel_size=kernel_size, residual=residual, layer_norm=layer_norm)
        self.in_channels, self.n_values, self.residual = in_channels, n_values, residual
        self.channels_last = channels_last
        f, k = filters, kernel_size
        norm = (lambda: LayerNormChannels(f)) if layer_norm else nn.Identity
        self.first = MaskedConv2d(in_channels, f, k, "A", fast)
        if residual:
            self.layers = nn.ModuleList(ResBlock(f, k, fast, layer_norm) for _ in range(n_layers))
        else:
            self.layers = nn.ModuleList(MaskedConv2d(f, f, k, "B", fast, relu_input=True) for _ in range(n_layers))
        self.norms = nn.ModuleList(norm() for _ in range(1 if residual else n_layers + 1))
        self.head = MaskedConv2d(f, f, 1, "B", relu_input=True)
        self.out = MaskedConv2d(f, in_channels * n_values, 1, "B", relu_input=True)   # channel c*n_values + v

    @property
    def fast(self) -> bool:
        return self.first.fast

    def set_fast(self, fast: bool):
        """Switch every masked conv between the cropped (fast) and plain reference implementation."""
        for m in self.modules():
            if isinstance(m, MaskedConv2d):
                m.fast = fast
        return self

    def embed(self, x):                                     # (B, H, W, C) ints -> (B, C, H, W) floats in [-1, 1]
        h = (x.float() * (2.0 / (self.n_values - 1)) - 1.0).permute(0, 3, 1, 2)
        return h if self.channels_last else h.contiguous()

    def logits(self, h):                                    # (B, C, H, W) floats -> (B, H, W, C, n_values)
        # every conv after the first applies the ReLU before it to its own input (relu_input=True)
        h = self.first(h)
        if self.residual:
            for block in self.layers:
                h = block(h)
            h = self.norms[0](h)
        else:
            h = self.norms[0](h)
            for conv, norm in zip(self.layers, self.norms[1:]):
                h = norm(conv(h))
        h = self.out(self.head(h))                          # (B, C*V, H, W)
        B, _, H, W = h.shape
        return h.permute(0, 2, 3, 1).reshape(B, H, W, self.in_channels, self.n_values)

    def forward(self, x):                                   # (B, H, W, C) ints -> (B, H, W, C, n_values) logits
        return self.logits(self.embed(x))

    def masked_convs(self):
        return [m for m in self.modules() if isinstance(m, MaskedConv2d) and m.kernel_size[0] > 1]


def loss(model: PixelCNN, x: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of x (B, H, W, C) ints, in nats per dimension (pixel channel)."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, model.n_values), x.reshape(-1).long())


@torch.inference_mode()
def per_pixel_probs(model: PixelCNN, x: torch.Tensor) -> torch.Tensor:
    """p(x_i^c = v | x_<i) for every pixel, channel and value, from one full forward: (B, H, W, C, n_values)."""
    return torch.softmax(model(x).float(), -1)


@torch.inference_mode()
def per_pixel_nll(model: PixelCNN, x: torch.Tensor) -> torch.Tensor:
    """-log p(x_i^c | x_<i) in nats for every pixel channel of x (B, H, W, C) ints, from one full forward:
    (B, H, W, C). Its sum over an image is that image's negative log-likelihood, the image's loss x H*W*C."""
    logp = torch.log_softmax(model(x).float(), -1)
    return -logp.gather(-1, x.long()[..., None])[..., 0]


def receptive_field_height(model: PixelCNN) -> int:
    """Rows above a pixel that can reach it: k//2 per masked kxk layer."""
    return sum(m.kernel_size[0] // 2 for m in model.masked_convs())


# ----------------------------------------------------------------------------- sampling
class _Full:
    """Reference: the whole net on the whole image for every pixel."""
    def __init__(self, model, x):
        self.model, self.x = model, x

    def prefix_logits(self, r0):
        return self.model(self.x)[:, :r0]

    def __call__(self, r, c):                               # -> (n, C, V) logits at (r, c)
        return self.model(self.x)[:, r, c]

    def drawn(self, r, c):
        pass

    def active(self):
        return nullcontext()


class _Incremental:
    """Fast: every masked kxk conv caches its input (in this call's StepState); a step computes the net at one
    position only."""
    def __init__(self, model, x):
        n, H, W, _ = x.shape
        self.model, self.x, self.state = model, x, StepState()
        for m in model.masked_convs():
            self.state.start(m, n, H, W)

    def prefix_logits(self, r0):                            # a normal forward on the known rows fills the caches
        self.state.filling = True
        try:
            return self.model(self.x[:, :r0])
        finally:
            self.state.filling = False

    def __call__(self, r, c):
        self.state.pos = (r, c)
        return self.model(self.x[:, r:r + 1, c:c + 1])[:, 0, 0]

    def drawn(self, r, c):                                  # the first (type A) layer's input is the image itself
        self.model.first.write(self.state, r, c, self.model.embed(self.x[:, r:r + 1, c:c + 1])[:, :, 0, 0])

    def active(self):                                       # the layers step only inside this (this thread only)
        return self.state.use()


@torch.inference_mode()
def sample(model: PixelCNN, n: int, shape, generator: torch.Generator | None = None, on_pixel=None,
           prefix=None, fast: bool = True, return_probs: bool = False):
    """Draw n images of shape (H, W) or (H, W, C) pixel by pixel, in raster order; -> (n, H, W, C) long.

    generator: a torch.Generator (CPU) for reproducible draws. on_pixel(r, c, x): called after each pixel,
    x the (n, H, W, C) images so far (to watch a sample being drawn). prefix: (n, R, W, C) known top rows
    (e.g. the top half of test images) to complete the rest. fast: incremental (cached) steps vs full
    recomputation. return_probs: also return the probabilities every pixel was drawn from (n, H, W, C, V)
    (for prefix rows: the model's probabilities of the given values).
    """
    H, W = shape[0], shape[1]
    C, V = model.in_channels, model.n_values
    if len(shape) > 2 and shape[2] != C:
        raise ValueError(f"the model draws {C} channel(s) per pixel, shape asks for {shape[2]}")
    device = next(model.parameters()).device
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    x = torch.zeros(n, H, W, C, dtype=torch.long, device=device)
    probs = torch.zeros(n, H, W, C, V, device=device) if return_probs else None
    r0 = 0
    if prefix is not None:
        prefix = torch.as_tensor(prefix, device=device).long()
        if prefix.ndim != 4 or prefix.shape[0] != n or prefix.shape[2:] != (W, C) or prefix.shape[1] > H:
            raise ValueError(f"prefix must be (n={n}, R<={H}, W={W}, C={C}), got {tuple(prefix.shape)}")
        r0 = prefix.shape[1]
        x[:, :r0] = prefix
    stepper = (_Incremental if fast else _Full)(model, x)
    with evaluating(model), stepper.active():
        if r0 > 0:
            p0 = torch.softmax(stepper.prefix_logits(r0).float(), -1)
            if return_probs:
                probs[:, :r0] = p0
        for r in range(r0, H):
            for c in range(W):
                p = torch.softmax(stepper(r, c).float(), -1)                # (n, C, V)
                u = torch.rand(n, C, 1, generator=gen, device=gen.device).to(device)
                x[:, r, c] = (p.cumsum(-1) < u).sum(-1).clamp_(max=V - 1)  # inverse CDF
                stepper.drawn(r, c)
                if return_probs:
                    probs[:, r, c] = p
                if on_pixel is not None:
                    on_pixel(r, c, x)
    return (x, probs) if return_probs else x


# ----------------------------------------------------------------------------- receptive field
def receptive_field(model_or_config, row: int, col: int, H: int, W: int, seed: int = 0) -> np.ndarray:
    """(H, W) bool: the input pixels that influence the output distribution at (row, col).

    Measured, not derived: the gradient of (a random projection of) the logits at (row, col) with respect to
    the input, summed over a few random inputs, for the given net or a net built from a config dict with
    random weights. Shows the blind spot of the plain PixelCNN stack (pixels up and to the right it never sees).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model_or_config, PixelCNN):
            model = model_or_config
        else:
            model = PixelCNN(**model_or_config)
        device = next(model.parameters()).device
        C, V = model.in_channels, model.n_values
        h = torch.randn(4, C, H, W, device=device)
        if model.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        coef = torch.randn(4, C, V, device=device)
    with torch.enable_grad():
        h.requires_grad_(True)
        out = model.logits(h)[:, row, col]                 # (4, C, V)
        (grad,) = torch.autograd.grad((out * coef).sum(), h)
    return (grad.abs().sum((0, 1)) > 0).cpu().numpy()


# ----------------------------------------------------------------------------- colour channels
def channel_mask(kind: str, k: int, in_channels: int, out_channels: int, groups: int = 3) -> np.ndarray:
    """(out_channels, in_channels, k, k) bool: the PixelCNN paper's channel-ordered mask (R -> G -> B), which this
    lab does NOT use (its colour channels are independent given the earlier pixels; see mask_array).

    Channels are split into `groups` contiguous groups (group g = R, G, B for g = 0, 1, 2; an image's 3 channels
    are one each; the logits c*n_values + v fall into group c). Earlier pixels: every output channel sees every
    input channel. At the centre, output group g sees input groups < g (type A) or <= g (type B): type B differs
    from type A only on the diagonal, a channel's own group. Later pixels: nothing."""
    for n, what in ((in_channels, "in_channels"), (out_channels, "out_channels")):
        if n < groups or n % groups:
            raise ValueError(f"{what} ({n}) must be a multiple of the {groups} channel groups")
    spatial = mask_array("A", k)                                   # earlier pixels only
    g_in = np.arange(in_channels) * groups // in_channels
    g_out = np.arange(out_channels) * groups // out_channels
    m = np.broadcast_to(spatial, (out_channels, in_channels, k, k)).copy()
    centre = g_in[None, :] < g_out[:, None] if kind == "A" else g_in[None, :] <= g_out[:, None]
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    m[:, :, k // 2, k // 2] = centre
    return m


def centre_dependence(model: PixelCNN, H: int = 8, W: int = 8, seed: int = 0, left: int = 0) -> np.ndarray:
    """(C, C) bool, measured: [c_out, c_in] = whether the predicted distribution of channel c_out at a pixel
    depends on the input value of channel c_in at that same pixel (left=1: at the pixel just left of it)
    (gradients of random projections of the logits at the centre pixel, over a few random inputs). A net with
    independent channels (this lab's): all False at the pixel itself, all True at the pixel before it; the
    paper's channel-ordered masks: True exactly below the diagonal at the pixel itself."""
    row, col = H // 2, W // 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        device = next(model.parameters()).device
        C, V = model.in_channels, model.n_values
        h = torch.randn(4, C, H, W, device=device)
        coef = torch.randn(4, C, V, device=device)
    out = np.zeros((C, C), dtype=bool)
    with torch.enable_grad():
        h.requires_grad_(True)
        logits = model.logits(h)[:, row, col]             # (4, C, V)
        for c in range(C):
            (grad,) = torch.autograd.grad((logits[:, c] * coef[:, c]).sum(), h, retain_graph=c < C - 1)
            out[c] = (grad[:, :, row, col - left].abs().sum(0) > 0).cpu().numpy()
    return out


def sampler_cache(model: PixelCNN, H: int, W: int, n: int = 1) -> list[dict]:
    """What the fast sampler (sample(fast=True)) caches for n images of H x W, read from the StepState its
    stepper builds: one row per masked k x k conv (k > 1): the layer's name, kind, kernel, the cached tensor's
    shape (n, Cin, H + p, W + 2p: the layer's input, zero-padded, after its ReLU when it has one), its numbers,
    and the window a step reads (Cin, p + 1, k) to compute the layer's output at one position. 1 x 1 convs keep
    no cache: their output at a position needs only their input there."""
    names = {m: name for name, m in model.named_modules()}
    x = torch.zeros(n, H, W, model.in_channels, dtype=torch.long, device=next(model.parameters()).device)
    rows = []
    for layer, (cache, _) in _Incremental(model, x).state.layers.items():
        p, k = layer.kernel_size[0] // 2, layer.kernel_size[0]
        rows.append(dict(layer=names[layer], kind=layer.kind, kernel=k, relu_input=layer.relu_input,
                         shape=tuple(cache.shape), numbers=cache.numel(), bytes=cache.numel() * cache.element_size(),
                         window=(layer.in_channels, p + 1, k)))
    return rows
