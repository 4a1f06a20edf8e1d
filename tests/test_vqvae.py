"""VQ-VAE tokenizer and codebook lab: shapes, nearest codes, straight-through gradients, training, the lab."""
import numpy as np
import pytest
import torch

from core import codebook as lab
from core.models.vqvae import (VQVAE, VQTokenizer, VQVAEConfig, VectorQuantizer, bits_per_image, load_tokenizer,
                               nearest_code, save_tokenizer, vqvae_loss)

K = 64  # a small codebook keeps the tests fast


def coloured_blocks(n, seed=0):
    """(n,28,28,3) uint8 in 0..3: a rectangle of one colour on a background of another."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 28, 28, 3), np.uint8)
    for i in range(n):
        bg, fg = rng.integers(0, 4, 3), rng.integers(0, 4, 3)
        x[i] = bg
        r, c = rng.integers(0, 14, 2)
        h, w = rng.integers(6, 14, 2)
        x[i, r:r + h, c:c + w] = fg
    return x


def small_model(seed=0, **kw):
    torch.manual_seed(seed)
    return VQVAE(VQVAEConfig.preset("small", n_embeddings=K, **kw))


def sq_dists(a, b):
    """Brute force: (N,M) squared distances between rows of a (N,D) and b (M,D)."""
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)


def assert_nearest(idx, z, cb, active=None):
    """idx picks a code at the minimum brute-force distance (among active codes) for every row of z."""
    d = sq_dists(z, cb)
    if active is not None:
        assert active[idx].all()
        d[:, ~active] = float("inf")
    idx = torch.as_tensor(idx).flatten()
    chosen, best = d[torch.arange(len(z)), idx], d.min(1).values
    assert torch.allclose(chosen, best, rtol=1e-5, atol=1e-6)  # equal up to float rounding (ties)
    assert (idx == d.argmin(1)).float().mean() > 0.99


def recon_mse(model, x):
    model.eval()
    with torch.no_grad():
        return vqvae_loss(model, x).recon.item()


@pytest.fixture(scope="module")
def trained():
    """A small tokenizer trained for 200 steps on 512 synthetic images (a few seconds on 2 cores)."""
    torch.manual_seed(0)
    train, test = coloured_blocks(512, seed=1), coloured_blocks(128, seed=2)
    model = small_model()
    before = recon_mse(model, test)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    usages = []
    for step in range(200):
        model.train()
        batch = train[np.random.default_rng(step).integers(0, len(train), 32)]
        loss = vqvae_loss(model, batch)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        usages.append(loss.usage)
    return dict(model=model, tok=VQTokenizer(model), test=test, before=before, after=recon_mse(model, test),
                usages=usages)


# ----------------------------------------------------------------------------- the model
def test_training_lowers_reconstruction_error_and_uses_the_codebook(trained):
    assert trained["after"] < 0.5 * trained["before"], (trained["before"], trained["after"])
    assert np.mean(trained["usages"][-20:]) > K / 4  # dead-code restarts keep many codes in play


def test_quantize_and_decode_shapes_and_ranges(trained):
    tok, x = trained["tok"], trained["test"][:10]
    z = tok.quantize(x)
    assert isinstance(z, np.ndarray) and z.shape == (10, 7, 7) and z.dtype == np.int64
    assert z.min() >= 0 and z.max() < tok.n_embeddings == K
    assert np.array_equal(tok.quantize(torch.as_tensor(x)), z)  # numpy or tensor input
    x_hat = tok.decode(z)
    assert isinstance(x_hat, np.ndarray) and x_hat.shape == (10, 28, 28, 3) and x_hat.dtype == np.float32
    # ~0..3, like x: the decoder is unbounded and a tiny training may overshoot on a few pixels (one fresh clone
    # saw -1.46), so the range is asked of nearly all values, not of the extremes
    assert np.isfinite(x_hat).all() and np.mean((x_hat > -1) & (x_hat < 4)) > 0.99
    assert abs(x_hat.mean() - x.mean()) < 0.3
    assert np.array_equal(tok.decode(torch.as_tensor(z)), x_hat)


def test_nearest_code_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    z, cb = torch.randn(500, 16, generator=g), torch.randn(40, 16, generator=g)
    assert_nearest(nearest_code(z, cb), z, cb)
    active = torch.arange(40) % 3 == 0
    assert_nearest(nearest_code(z, cb, active), z, cb, active)


def test_quantizer_output_is_the_nearest_code():
    vq = VectorQuantizer(VQVAEConfig(n_embeddings=32, embedding_dim=8)).eval()
    torch.nn.init.normal_(vq.codebook.weight)
    z_e = torch.randn(4, 8, 7, 7)
    z_q, idx, *_ = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    assert_nearest(idx, flat, vq.codebook.weight.detach())
    assert torch.allclose(z_q.permute(0, 2, 3, 1).reshape(-1, 8), vq.codebook.weight[idx.flatten()], atol=1e-6)


def test_tokenizer_quantize_is_nearest_code_of_encoder_output(trained):
    tok, x = trained["tok"], trained["test"][:16]
    z_e = tok.encode(x).reshape(-1, tok.codebook.shape[1])
    assert_nearest(tok.quantize(x), z_e, tok.codebook)


@pytest.mark.parametrize("ema_decay", [0.99, 0.0])  # EMA codes (our default) or codes learned by the loss
def test_straight_through_gradient_reaches_the_encoder(ema_decay):
    model = small_model(ema_decay=ema_decay).train()
    x = coloured_blocks(8)
    z_e = model.encode(x)
    z_e.retain_grad()
    z_q, *_ = model.quantizer(z_e)
    z_q.retain_grad()
    recon = torch.nn.functional.mse_loss(model.decode_latents(z_q), torch.as_tensor(x).float())
    recon.backward()  # the reconstruction loss alone, no VQ loss
    assert torch.equal(z_e.grad, z_q.grad)  # straight through: the quantizer passes the gradient unchanged
    assert model.encoder[0].weight.grad.abs().sum() > 0
    grad = model.quantizer.codebook.weight.grad
    assert grad is None or grad.abs().sum() == 0  # the reconstruction loss never reaches the codes


def test_codebook_loss_trains_the_codes_when_ema_is_off():
    model = small_model(ema_decay=0.0).train()
    vqvae_loss(model, coloured_blocks(8)).vq.backward()
    assert model.quantizer.codebook.weight.grad.abs().sum() > 0


def test_first_training_step_initialises_codebook_from_encoder_outputs():
    model = small_model(ema_decay=0.0).train()  # (with EMA the codes then move on within the same step)
    x = coloured_blocks(16)
    with torch.no_grad():
        z = model.encode(x).permute(0, 2, 3, 1).reshape(-1, model.config.embedding_dim)
    vqvae_loss(model, x)
    dist = sq_dists(model.quantizer.codebook.weight.detach(), z).min(1).values
    assert dist.max() < 1e-10  # every code now sits on an encoder output of this batch
    assert model.quantizer.unused_steps.max() <= 1


def test_no_restarts_or_counters_outside_training():
    model = small_model()
    before = model.quantizer.codebook.weight.detach().clone()
    model.eval()
    vqvae_loss(model, coloured_blocks(4))
    model.train()
    with torch.no_grad():
        vqvae_loss(model, coloured_blocks(4))
    assert torch.equal(model.quantizer.codebook.weight, before)


def test_full_config_shapes():
    c = VQVAEConfig()
    assert (c.n_embeddings, c.embedding_dim, c.hidden1, c.hidden2, c.res_hidden, c.n_res_layers, c.beta) == \
        (1024, 64, 128, 256, 32, 3, 0.25)
    model = VQVAE(c)
    x_hat, idx, vq_loss, perplexity, usage = model(coloured_blocks(2))
    assert x_hat.shape == (2, 28, 28, 3) and idx.shape == (2, 7, 7) and vq_loss.ndim == 0
    assert 1 <= perplexity <= 98 + 1e-3 and 1 <= usage <= 98


def test_save_and_load_roundtrip(trained, tmp_path):
    path = tmp_path / "tok.safetensors"
    save_tokenizer(trained["model"], str(path))
    tok2, x = load_tokenizer(str(path)), trained["test"][:8]
    assert tok2.n_embeddings == K
    assert np.array_equal(tok2.quantize(x), trained["tok"].quantize(x))
    assert np.allclose(tok2.decode(tok2.quantize(x)), trained["tok"].reconstruct(x), atol=1e-5)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, msg", [
    (np.zeros((2, 28, 28), np.uint8), "shape"),
    (np.zeros((2, 20, 20, 3), np.uint8), "shape"),
    (np.zeros((28, 28, 3), np.uint8), "shape"),
    (np.full((2, 28, 28, 3), 4, np.uint8), "0..3"),
    (np.full((2, 28, 28, 3), -1, np.int64), "0..3"),
    (np.full((2, 28, 28, 3), 255, np.uint8), "0..3"),
])
def test_quantize_rejects_bad_images(trained, bad, msg):
    with pytest.raises(ValueError, match=msg):
        trained["tok"].quantize(bad)


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((2, 8, 8), np.int64), "shape"),
    (np.full((2, 7, 7), K, np.int64), r"0\.\.63"),
    (np.full((2, 7, 7), -1, np.int64), r"0\.\.63"),
    (np.full((2, 7, 7), 0.5), "whole"),
])
def test_decode_rejects_bad_indices(trained, bad, msg):
    with pytest.raises(ValueError, match=msg):
        trained["tok"].decode(bad)


@pytest.mark.parametrize("k", [0, -3, K + 1, 2.5])
def test_shrink_rejects_bad_k(trained, k):
    x = trained["test"][:4]
    for shrink in (lab.keep_most_used, lab.kmeans_shrink):
        with pytest.raises(ValueError, match="K must"):
            shrink(trained["tok"], x, k)
    with pytest.raises(ValueError, match="K must"):
        lab.rate_distortion(trained["tok"], x, [4, k])


def test_switching_off_every_code_is_refused(trained):
    with pytest.raises(ValueError, match="at least one"):
        lab.switch_off(trained["tok"], np.arange(K))
    with pytest.raises(ValueError, match="0..63"):
        lab.switch_off(trained["tok"], [K])


# ----------------------------------------------------------------------------- the codebook lab
@pytest.mark.parametrize("k", [1, 5, 16])
def test_shrinking_to_k_leaves_at_most_k_indices(trained, k):
    tok, x = trained["tok"], trained["test"]
    for small in (lab.keep_most_used(tok, x, k), lab.kmeans_shrink(tok, x, k)):
        assert len(np.unique(small.quantize(x))) <= k
        assert small.n_active == k
    assert lab.kmeans_shrink(tok, x, k).n_embeddings == k  # k-means builds a dense k-code codebook
    assert tok.n_active == K  # the original is untouched


def test_keep_most_used_keeps_the_top_codes(trained):
    tok, x = trained["tok"], trained["test"]
    usage = lab.code_usage(tok, x)
    small = lab.keep_most_used(tok, x, 8)
    kept = set(np.where(small.active.numpy())[0])
    assert min(usage[list(kept)]) >= max(np.delete(usage, list(kept)))
    assert set(np.unique(small.quantize(x))) <= kept


def test_switched_off_code_never_appears_and_original_is_unchanged(trained):
    tok, x = trained["tok"], trained["test"]
    before = tok.quantize(x)
    top = np.bincount(before.ravel()).argsort()[-3:]  # the three most used codes
    off = lab.switch_off(tok, top)
    after = off.quantize(x)
    assert not np.isin(after, top).any()
    assert_nearest(after, tok.encode(x).reshape(-1, tok.codebook.shape[1]), tok.codebook, off.active)
    changed = np.isin(before, top)
    assert np.array_equal(after[~changed], before[~changed])  # other tokens keep their code
    assert np.array_equal(tok.quantize(x), before) and tok.n_active == K


def test_compact_renumbers_active_codes(trained):
    tok, x = trained["tok"], trained["test"]
    small = lab.keep_most_used(tok, x, 10)
    dense, old = lab.compact(small)
    assert dense.n_embeddings == 10 and np.array_equal(old[dense.quantize(x)], small.quantize(x))


def test_perturb_is_seeded_and_leaves_the_original(trained):
    tok, x = trained["tok"], trained["test"][:32]
    cb = tok.codebook.clone()
    a, b = lab.perturb(tok, 0.5, seed=1), lab.perturb(tok, 0.5, seed=1)
    assert torch.equal(a.codebook, b.codebook) and not torch.equal(a.codebook, cb)
    assert torch.equal(tok.codebook, cb)
    assert np.array_equal(lab.perturb(tok, 0.0).quantize(x), tok.quantize(x))
    one = lab.perturb(tok, 1.0, codes=[3])
    assert torch.equal(one.codebook[4:], cb[4:]) and not torch.equal(one.codebook[3], cb[3])
    err0 = lab.reconstruction_error(tok, x)["mse"]
    assert lab.reconstruction_error(lab.perturb(tok, 3.0, seed=0), x)["mse"] > err0


@pytest.mark.parametrize("method", ["kmeans", "most_used"])
def test_rate_distortion(trained, method):
    tok, x = trained["tok"], trained["test"]
    rows = lab.rate_distortion(tok, x, [1, 4, K], method=method)
    assert [r["k"] for r in rows] == [1, 4, K]
    assert np.allclose([r["bits"] for r in rows], [0, 98, 49 * 6]) and bits_per_image(1024) == 490
    assert all(r["used"] <= r["k"] for r in rows)
    full = lab.reconstruction_error(tok, x)
    assert rows[-1]["mse"] == pytest.approx(full["mse"], rel=1e-5)  # all codes kept: nothing changes
    assert rows[0]["mse"] > rows[-1]["mse"] and rows[0]["wrong"] >= rows[-1]["wrong"]
    assert 0 <= rows[0]["wrong"] <= 1
