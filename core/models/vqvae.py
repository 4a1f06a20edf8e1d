"""VQ-VAE tokenizer: a 28x28x3 image with 2-bit channels <-> a 7x7 grid of codebook indices.

    x (B,28,28,3) in 0..3 --shift -1.5--> encoder --> z_e (B,D,7,7) --nearest code--> idx (B,7,7)
    idx --codebook--> z_q (B,D,7,7) --> decoder --shift +1.5--> x_hat (B,28,28,3) in ~0..3

Encoder: conv 4x4/2 (3->h1, 28->14), conv 4x4/2 (h1->h2, 14->7), conv 3x3, residual stack, conv 1x1 (h2->D).
Decoder mirrors it with transposed convs. The quantizer passes gradients straight through and pulls the
encoder towards its codes with the commitment loss (beta 0.25). The codes themselves follow exponential moving
averages of the encoder outputs assigned to them (ema_decay 0.99). ema_decay=0 selects the original's codebook
loss instead; on coloured MNIST both reached the same error in 150 s of CPU training, but on 200-step runs over a
tiny synthetic set EMA learned faster and more reliably, so it is the default. Codes left unused for `restart_after`
training steps are restarted at random encoder outputs of the current batch, so the whole codebook stays in
use; codes start out "dead", so the first training batch initialises the codebook from data.

`VQTokenizer` is the frozen object the homework functions take: `n_embeddings`, `quantize`, `decode`.
It keeps its own copy of the codebook (and a mask of active codes), so the codebook lab (core/codebook.py)
can change the codebook without touching the trained model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQVAEConfig:
    n_embeddings: int = 1024   # K codes in the codebook
    embedding_dim: int = 64    # D dims per code
    hidden1: int = 128         # channels after the first 4x4/2 conv (28 -> 14)
    hidden2: int = 256         # channels after the second 4x4/2 conv (14 -> 7)
    res_hidden: int = 32       # hidden channels inside each residual layer
    n_res_layers: int = 3
    beta: float = 0.25         # commitment weight
    restart_after: int = 20    # training steps a code may go unused before it is restarted (0: never)
    ema_decay: float = 0.99    # codes are moving averages of their encoder outputs; 0: learn them by the
                               # codebook loss ||sg(z_e) - e||^2 instead, as the original did

    @classmethod
    def preset(cls, name: str = "full", **overrides) -> "VQVAEConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown VQ-VAE preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS = {
    "full": VQVAEConfig(),                                            # the original tokenizer's shape
    "small": VQVAEConfig(hidden1=32, hidden2=64, res_hidden=16),      # trains in minutes on 2 CPU cores
}


# ----------------------------------------------------------------------------- encoder / decoder
class ResidualStack(nn.Module):
    """n x [x + conv1x1(relu(conv3x3(relu(x))))], then a ReLU."""

    def __init__(self, channels: int, hidden: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.ReLU(), nn.Conv2d(hidden, channels, 1, bias=False)) for _ in range(n_layers))

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(x)
        return F.relu(x)


def encoder(c: VQVAEConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, c.hidden1, 4, stride=2, padding=1), nn.ReLU(),           # (B,h1,14,14)
        nn.Conv2d(c.hidden1, c.hidden2, 4, stride=2, padding=1), nn.ReLU(),   # (B,h2,7,7)
        nn.Conv2d(c.hidden2, c.hidden2, 3, padding=1),
        ResidualStack(c.hidden2, c.res_hidden, c.n_res_layers),
        nn.Conv2d(c.hidden2, c.embedding_dim, 1))                            # (B,D,7,7)


def decoder(c: VQVAEConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c.embedding_dim, c.hidden2, 3, padding=1),                 # (B,h2,7,7)
        ResidualStack(c.hidden2, c.res_hidden, c.n_res_layers),
        nn.ConvTranspose2d(c.hidden2, c.hidden1, 4, stride=2, padding=1), nn.ReLU(),  # (B,h1,14,14)
        nn.ConvTranspose2d(c.hidden1, 3, 4, stride=2, padding=1))                    # (B,3,28,28)


# ----------------------------------------------------------------------------- quantizer
def nearest_code(z: torch.Tensor, codebook: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
    """z (N,D), codebook (K,D) -> (N,) index of the nearest code (squared Euclidean), among `active` ones."""
    d = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)  # (N,K)
    if active is not None:
        d = d.masked_fill(~active, float("inf"))
    return d.argmin(1)


def usage_stats(idx: torch.Tensor, n_embeddings: int) -> tuple[float, int]:
    """Perplexity exp(H(p)) of the code histogram and the number of distinct codes used."""
    counts = torch.bincount(idx.flatten(), minlength=n_embeddings).float()
    p = counts / counts.sum().clamp(min=1)
    perplexity = torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum()).item()
    return perplexity, int((counts > 0).sum())


class VectorQuantizer(nn.Module):
    def __init__(self, c: VQVAEConfig):
        super().__init__()
        self.beta, self.restart_after, self.ema_decay = c.beta, c.restart_after, c.ema_decay
        self.codebook = nn.Embedding(c.n_embeddings, c.embedding_dim)
        nn.init.uniform_(self.codebook.weight, -1 / c.n_embeddings, 1 / c.n_embeddings)
        if self.ema_decay:  # codes are running means of the encoder outputs assigned to them
            self.codebook.weight.requires_grad_(False)
            self.register_buffer("ema_count", torch.ones(c.n_embeddings))
            self.register_buffer("ema_sum", self.codebook.weight.detach().clone())
        # training steps since each code was last chosen; starting "dead" initialises the codebook from data
        self.register_buffer("unused_steps", torch.full((c.n_embeddings,), c.restart_after, dtype=torch.long))

    @torch.no_grad()
    def _restart_dead_codes(self, z: torch.Tensor):
        """Move codes unused for `restart_after` steps onto random encoder outputs z (N,D) of this batch."""
        dead = (self.unused_steps >= self.restart_after).nonzero().flatten()
        if len(dead) == 0:
            return
        n = z.shape[0]
        pick = torch.randperm(n, device=z.device)[:len(dead)] if n >= len(dead) else \
            torch.randint(n, (len(dead),), device=z.device)
        self.codebook.weight[dead] = z[pick].to(self.codebook.weight.dtype)
        self.unused_steps[dead] = 0
        if self.ema_decay:
            self.ema_sum[dead], self.ema_count[dead] = self.codebook.weight[dead], 1.0

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, idx: torch.Tensor):
        """Move each code towards the mean of the encoder outputs z (N,D) assigned to it."""
        g, K = self.ema_decay, self.ema_count.numel()
        self.ema_count.mul_(g).add_(torch.bincount(idx, minlength=K).float(), alpha=1 - g)
        self.ema_sum.mul_(g).add_(torch.zeros_like(self.ema_sum).index_add_(0, idx, z), alpha=1 - g)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + K * 1e-5) * n  # Laplace smoothing keeps rare codes finite
        self.codebook.weight.copy_(self.ema_sum / count[:, None])

    def forward(self, z_e: torch.Tensor):
        """z_e (B,D,H,W) -> z_q with straight-through gradient (B,D,H,W), idx (B,H,W), vq loss, perplexity, usage."""
        B, D, H, W = z_e.shape
        z = z_e.permute(0, 2, 3, 1).reshape(-1, D)  # (N,D), N = B*H*W
        learning = self.training and torch.is_grad_enabled()
        if learning and self.restart_after > 0:
            self._restart_dead_codes(z.detach())  # before the codebook enters this step's graph
        idx = nearest_code(z.detach(), self.codebook.weight.detach())  # (N,)
        z_q = self.codebook(idx)  # (N,D)
        # codebook loss pulls codes to encoder outputs; commitment loss keeps the encoder near its codes
        vq_loss = self.beta * F.mse_loss(z, z_q.detach())
        if not self.ema_decay:
            vq_loss = vq_loss + F.mse_loss(z_q, z.detach())
        elif learning:
            self._ema_update(z.detach(), idx)
        z_q = z + (z_q - z).detach()  # straight-through: forward uses z_q, gradient flows to z unchanged
        if learning:
            used = torch.bincount(idx, minlength=self.unused_steps.numel()) > 0
            self.unused_steps += 1
            self.unused_steps[used] = 0
        perplexity, usage = usage_stats(idx, self.codebook.num_embeddings)
        z_q = z_q.reshape(B, H, W, D).permute(0, 3, 1, 2)
        return z_q, idx.reshape(B, H, W), vq_loss, perplexity, usage


# ----------------------------------------------------------------------------- the model
def to_input(x) -> torch.Tensor:
    """Images (B,28,28,3) in 0..3 (any numeric type) -> float (B,3,28,28) shifted by -1.5."""
    return torch.as_tensor(x).float().permute(0, 3, 1, 2) - 1.5


class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = config or VQVAEConfig()
        self.encoder, self.quantizer, self.decoder = \
            encoder(self.config), VectorQuantizer(self.config), decoder(self.config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,28,28,3) in 0..3 -> z_e (B,D,7,7)."""
        return self.encoder(to_input(x).to(self.quantizer.codebook.weight.device))

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q (B,D,7,7) -> x_hat (B,28,28,3) in ~0..3."""
        return self.decoder(z_q).permute(0, 2, 3, 1) + 1.5

    def forward(self, x):
        """x (B,28,28,3) in 0..3 -> x_hat (B,28,28,3), idx (B,7,7), vq loss, perplexity, usage."""
        z_q, idx, vq_loss, perplexity, usage = self.quantizer(self.encode(x))
        return self.decode_latents(z_q), idx, vq_loss, perplexity, usage


@dataclass
class VQLoss:  # not a tuple: core.train.fit reads a tuple as (loss, weight); pass `lambda m, b: ....total`
    total: torch.Tensor       # recon + vq, what the optimiser minimises
    recon: torch.Tensor       # MSE of the reconstruction in the 0..3 pixel scale
    vq: torch.Tensor          # codebook loss + beta * commitment loss
    perplexity: float         # exp(entropy) of this batch's code histogram
    usage: int                # distinct codes used in this batch


def vqvae_loss(model: VQVAE, x) -> VQLoss:
    """x (B,28,28,3) in 0..3 (uint8 array or tensor)."""
    x_hat, _, vq_loss, perplexity, usage = model(x)
    recon = F.mse_loss(x_hat, torch.as_tensor(x).float().to(x_hat.device))
    return VQLoss(recon + vq_loss, recon, vq_loss, perplexity, usage)


# ----------------------------------------------------------------------------- the frozen tokenizer
class VQTokenizer:
    """The `vqvae` object of the homework: n_embeddings, quantize(images) -> (B,7,7), decode(indices) -> images.

    codebook (K,D) and active (K,) bool are this tokenizer's own; quantize picks the nearest *active* code.
    The wrapped model is never modified (the codebook lab builds new tokenizers with `with_codebook`).
    """

    def __init__(self, model: VQVAE, codebook: torch.Tensor | None = None, active: torch.Tensor | None = None,
                 batch_size: int = 500):
        self.model = model.eval()
        self.device = model.quantizer.codebook.weight.device
        cb = model.quantizer.codebook.weight if codebook is None else codebook
        self.codebook = cb.detach().to(self.device, torch.float32).clone()  # (K,D)
        self.active = (torch.ones(len(self.codebook), dtype=torch.bool, device=self.device) if active is None
                       else torch.as_tensor(active, dtype=torch.bool, device=self.device).clone())
        if self.active.shape != (len(self.codebook),) or not self.active.any():
            raise ValueError("active must be a (K,) mask with at least one code switched on")
        self.batch_size = batch_size

    @property
    def n_embeddings(self) -> int:
        return len(self.codebook)

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    def with_codebook(self, codebook=None, active=None) -> "VQTokenizer":
        """A new tokenizer over the same model with another codebook and/or mask (defaults: this one's)."""
        if codebook is not None and active is None and len(codebook) != self.n_embeddings:
            active = torch.ones(len(codebook), dtype=torch.bool)
        return VQTokenizer(self.model, self.codebook if codebook is None else torch.as_tensor(codebook),
                           self.active if active is None else active, self.batch_size)

    # -- checks
    def _check_images(self, x) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
        if x.ndim != 4 or tuple(x.shape[1:]) != (28, 28, 3):
            raise ValueError(f"images must have shape (B, 28, 28, 3); got {tuple(x.shape)}")
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"images must hold numbers in 0..3; got dtype {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() > 3 or (x.is_floating_point() and x.isnan().any())):
            raise ValueError(f"image values must lie in 0..3 (2 bits per channel); got range "
                             f"{x.min().item()}..{x.max().item()}")
        return x

    def _check_indices(self, z) -> torch.Tensor:
        z = torch.as_tensor(np.asarray(z) if not torch.is_tensor(z) else z)
        if z.ndim != 3 or tuple(z.shape[1:]) != (7, 7):
            raise ValueError(f"indices must have shape (B, 7, 7); got {tuple(z.shape)}")
        if z.is_floating_point() and z.numel() and not torch.equal(z, z.round()):
            raise ValueError("indices must be whole numbers")
        z = z.long()
        if z.numel() and (z.min() < 0 or z.max() >= self.n_embeddings):
            raise ValueError(f"indices must lie in 0..{self.n_embeddings - 1}; got range "
                             f"{z.min().item()}..{z.max().item()}")
        return z

    # -- the homework interface
    @torch.no_grad()
    def encode(self, x) -> torch.Tensor:
        """images (B,28,28,3) in 0..3 -> encoder outputs (B,7,7,D) float tensor (before quantization)."""
        x = self._check_images(x)
        out = [self.model.encode(x[i:i + self.batch_size]).permute(0, 2, 3, 1)
               for i in range(0, len(x), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, 7, 7, self.codebook.shape[1], device=self.device)

    @torch.no_grad()
    def quantize_latents(self, z_e: torch.Tensor) -> torch.Tensor:
        """z_e (B,7,7,D) -> (B,7,7) int64 tensor of nearest active codes."""
        B = z_e.shape[0]
        return nearest_code(z_e.reshape(-1, z_e.shape[-1]), self.codebook, self.active).reshape(B, 7, 7)

    def quantize(self, x) -> np.ndarray:
        """images (B,28,28,3) ints 0..3 (numpy or tensor) -> (B,7,7) int64 numpy indices."""
        return self.quantize_latents(self.encode(x)).cpu().numpy()

    @torch.no_grad()
    def decode(self, z) -> np.ndarray:
        """indices (B,7,7) in 0..K-1 -> (B,28,28,3) float32 numpy in ~0..3 (not clipped)."""
        z = self._check_indices(z).to(self.device)
        out = [self.model.decode_latents(self.codebook[z[i:i + self.batch_size]].permute(0, 3, 1, 2))
               for i in range(0, len(z), self.batch_size)]
        return (torch.cat(out) if out else torch.zeros(0, 28, 28, 3)).float().cpu().numpy()

    def reconstruct(self, x) -> np.ndarray:
        return self.decode(self.quantize(x))


# ----------------------------------------------------------------------------- checkpoints
def save_tokenizer(model: VQVAE, path, meta: dict | None = None):
    """safetensors weights with the VQVAEConfig (and `meta` notes) in the metadata (core.checkpoints)."""
    from core.checkpoints import save_checkpoint
    return save_checkpoint(path, model, asdict(model.config), meta)


def load_tokenizer(path, device: str = "cpu", expected_sha256: str | None = None) -> VQTokenizer:
    from core.checkpoints import CheckpointError, read_checkpoint
    state, config, _ = read_checkpoint(path, expected_sha256)
    try:
        model = VQVAE(VQVAEConfig(**config))
        model.load_state_dict(state)
    except (TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a VQ-VAE tokenizer checkpoint ({e})") from None
    return VQTokenizer(model.to(device))


def bits_per_image(k: int) -> float:
    """49 tokens, each one of k codes."""
    return 49 * math.log2(k)
