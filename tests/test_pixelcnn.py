"""PixelCNN: masks, fast conv == plain conv, the autoregressive property, fast sampler == full sampler, training."""
import math

import numpy as np
import pytest
import torch

from core.models.masked import MaskedConv2d, mask_array
from core.models.pixelcnn import (PixelCNN, Q2A, Q2B, loss, per_pixel_probs, receptive_field,
                                  receptive_field_height, sample)

# small versions of the two homework nets, for speed
SMALL_A = {**Q2A, "filters": 8, "n_layers": 2, "kernel_size": 3}
SMALL_B = {**Q2B, "filters": 8, "n_layers": 2, "kernel_size": 3}


def make(cfg, seed=0, **kw):
    torch.manual_seed(seed)
    return PixelCNN(**{**cfg, **kw})


def rand_images(cfg, n, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["n_values"], (n, H, W, cfg["in_channels"]), generator=g)


# ----------------------------------------------------------------------------- masks and args
def test_mask_arrays():
    assert mask_array("A", 3).astype(int).tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert mask_array("B", 3).astype(int).tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert mask_array("B", 1).tolist() == [[True]] and mask_array("A", 1).tolist() == [[False]]
    for k in (3, 5, 7):   # type B: (k*k + 1) / 2 taps count, type A one fewer
        assert mask_array("B", k).sum() == (k * k + 1) // 2 and mask_array("A", k).sum() == (k * k - 1) // 2
    with pytest.raises(ValueError, match="odd"):
        mask_array("B", 4)


@pytest.mark.parametrize("kw, msg", [
    (dict(kernel_size=4), "odd"),
    (dict(kernel_size=0), "odd"),
    (dict(kernel_size=9, image_shape=(8, 8)), "larger than the image"),
    (dict(filters=0), "filters"),
    (dict(filters=1, residual=True), "filters"),
    (dict(n_values=1), "n_values"),
    (dict(n_layers=-1), "n_layers"),
])
def test_bad_args_raise_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        PixelCNN(**kw)


# ----------------------------------------------------------------------------- fast conv == plain conv
@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("relu_input", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_conv_equals_plain(kind, k, relu_input, channels_last):
    torch.manual_seed(k)
    plain = MaskedConv2d(5, 6, k, kind, fast=False, relu_input=relu_input)
    fast = MaskedConv2d(5, 6, k, kind, fast=True, relu_input=relu_input)
    fast.load_state_dict(plain.state_dict())                     # one parameterisation for both
    x = torch.randn(3, 5, 9, 8)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xp, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yp, yf = plain(xp), fast(xf)
    assert yf.shape == yp.shape == (3, 6, 9, 8)
    torch.testing.assert_close(yf, yp, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(yp)
    yp.backward(g)
    yf.backward(g)
    torch.testing.assert_close(xf.grad, xp.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, atol=1e-4, rtol=1e-5)
    # masked-out taps get no gradient
    assert (plain.weight.grad * (1 - plain.mask)).abs().max() == 0


@pytest.mark.parametrize("cfg", [SMALL_A, SMALL_B, {**SMALL_B, "kernel_size": 5, "layer_norm": False}])
def test_fast_net_equals_plain_net(cfg):
    fast = make(cfg, fast=True)
    plain = make(cfg, seed=1, fast=False, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    x = rand_images(cfg, 4, 9, 7)
    torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-5)
    plain.set_fast(True)
    torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-5)


def test_loss_is_nats_per_dim():
    for cfg in (SMALL_A, SMALL_B):
        m = make(cfg)
        with torch.no_grad():                                    # a uniform model: log(n_values) nats per dim
            m.out.weight.zero_()
            m.out.bias.zero_()
        assert loss(m, rand_images(cfg, 2, 5, 5)).item() == pytest.approx(math.log(cfg["n_values"]), rel=1e-6)


# ----------------------------------------------------------------------------- the autoregressive property
def ar_violations(model, H, W):
    """(output pixel, input pixel) pairs where the output distribution at pixel i depends on input pixel j >= i
    (raster order), found from gradients (receptive_field); plus the number of dependencies found at all."""
    bad, found = [], 0
    for i in range(H * W):
        rf = receptive_field(model, i // W, i % W, H, W).reshape(-1)
        found += int(rf.sum())
        bad += [(i, int(j)) for j in np.flatnonzero(rf) if j >= i]
    return bad, found


def perturbation_max_change(model, H, W, seed=0):
    """Largest change of p(x_i | .) (all channels) when inputs at pixels >= i are redrawn, over all i."""
    cfg = model.config
    x = rand_images(cfg, 3, H, W, seed)
    base = per_pixel_probs(model, x).reshape(3, H * W, -1)
    worst = 0.0
    for i in range(H * W):
        x2 = x.clone().reshape(3, H * W, -1)
        x2[:, i:] = rand_images(cfg, 3, H, W, seed + 1 + i).reshape(3, H * W, -1)[:, i:]
        p2 = per_pixel_probs(model, x2.reshape(x.shape)).reshape(3, H * W, -1)
        worst = max(worst, (p2[:, i] - base[:, i]).abs().max().item())
    return worst


@pytest.mark.parametrize("cfg", [SMALL_A, SMALL_B])
@pytest.mark.parametrize("fast", [True, False])
def test_autoregressive_property(cfg, fast):
    model = make(cfg, fast=fast)
    bad, found = ar_violations(model, 6, 5)
    assert bad == [] and found > 6 * 5                              # depends on earlier pixels, never later
    assert perturbation_max_change(model, 6, 5) < 1e-6


@pytest.mark.parametrize("leak", ["centre in type A", "right of centre in type B"])
def test_the_checks_catch_a_leaky_mask(leak):
    model = make(SMALL_B, fast=False)
    with torch.no_grad():
        if leak == "centre in type A":
            model.first.mask[0, 0, 1, 1] = 1                         # the first layer sees the pixel itself
        else:
            model.layers[0].conv.mask[0, 0, 1, 2] = 1                # a later layer peeks one pixel to the right
        model.first.weight.add_(0.5)                                 # make sure the leak carries weight
    bad, _ = ar_violations(model, 6, 5)
    assert len(bad) > 0
    assert perturbation_max_change(model, 6, 5) > 1e-3


def test_receptive_field_shows_the_blind_spot():
    model = make({**Q2A, "filters": 16, "n_layers": 4, "kernel_size": 3}, fast=False)
    H = W = 11
    r, c = 6, 5
    rf = receptive_field(model, r, c, H, W)
    before = (np.arange(H * W) < r * W + c).reshape(H, W)
    assert not (rf & ~before).any()                                 # only earlier pixels
    assert rf[r, c - 1] and rf[r - 1, c] and rf[r - 1, c + 1]       # neighbours left, above, above-right
    assert rf[r - receptive_field_height(model)].any() and not rf[:r - receptive_field_height(model)].any()
    blind = before & ~rf
    assert blind[r - 1:r, c + 2:].all()                              # the blind spot: up and to the right
    assert blind[r - 2, c + 3:].all() and not blind[r - 2, c]


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("cfg, shape", [(SMALL_A, (7, 6)), (SMALL_B, (5, 6))])
def test_fast_sampler_equals_full_sampler(cfg, shape):
    model = make(cfg)
    H, W = shape
    xf, pf = sample(model, 6, shape, torch.Generator().manual_seed(3), fast=True, return_probs=True)
    xs, ps = sample(model, 6, shape, torch.Generator().manual_seed(3), fast=False, return_probs=True)
    assert torch.equal(xf, xs)
    torch.testing.assert_close(pf, ps, atol=1e-5, rtol=0)
    # and both equal what one forward pass over the finished images predicts at every pixel
    torch.testing.assert_close(pf, per_pixel_probs(model, xf), atol=1e-5, rtol=0)
    torch.testing.assert_close(pf.sum(-1), torch.ones(6, H, W, cfg["in_channels"]), atol=1e-5, rtol=0)
    # completion: the known top rows stay, the rest is drawn the same way by both samplers
    prefix = rand_images(cfg, 6, 3, W, seed=9)
    cf, qf = sample(model, 6, shape, torch.Generator().manual_seed(4), prefix=prefix, return_probs=True)
    cs, qs = sample(model, 6, shape, torch.Generator().manual_seed(4), prefix=prefix, fast=False, return_probs=True)
    assert torch.equal(cf[:, :3], prefix) and torch.equal(cf, cs)
    torch.testing.assert_close(qf, qs, atol=1e-5, rtol=0)
    torch.testing.assert_close(qf, per_pixel_probs(model, cf), atol=1e-5, rtol=0)


def test_samples_shape_values_seed_and_callback():
    model = make(SMALL_B)
    calls = []
    x = sample(model, 4, (5, 4, 3), torch.Generator().manual_seed(0), on_pixel=lambda r, c, x: calls.append((r, c)))
    assert x.shape == (4, 5, 4, 3) and x.dtype == torch.long
    assert x.min() >= 0 and x.max() <= 3 and len(torch.unique(x)) > 1
    assert calls == [(r, c) for r in range(5) for c in range(4)]
    assert torch.equal(x, sample(model, 4, (5, 4), torch.Generator().manual_seed(0)))
    assert not torch.equal(x, sample(model, 4, (5, 4), torch.Generator().manual_seed(1)))
    assert model.training                                            # sampling leaves the mode as it found it
    with pytest.raises(ValueError, match="prefix"):
        sample(model, 4, (5, 4), prefix=torch.zeros(4, 2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="channel"):
        sample(model, 4, (5, 4, 1))
    xb = sample(make(SMALL_A), 3, (4, 4))
    assert xb.shape == (3, 4, 4, 1) and set(xb.unique().tolist()) <= {0, 1}


# ----------------------------------------------------------------------------- training
def bars(n, seed):
    """8x8 binary images: a random horizontal or vertical bar on an empty background."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8, 8, 1), dtype=np.uint8)
    for img in x:
        i, a = rng.integers(0, 8), rng.integers(0, 4)
        if rng.random() < 0.5:
            img[i, a:a + 4] = 1
        else:
            img[a:a + 4, i] = 1
    return torch.from_numpy(x)


def test_short_training_lowers_the_test_loss():
    from core.train import TrainConfig, fit
    model = make({**Q2A, "filters": 16, "n_layers": 2, "kernel_size": 5})
    res = fit(model, loss, bars(512, 0), bars(128, 1), TrainConfig(epochs=3, batch_size=32, lr=3e-3))
    start, end = res.test_losses[0], res.test_losses[-1]
    assert start > 0.5 and end < 0.5 * start, res.test_losses          # ln 2 = 0.69 at the start
