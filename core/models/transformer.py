"""A decoder-only transformer built from primitives, with a preallocated KV cache and one sampler (Q3-Q6).

Pieces: token + learned position embeddings, `n_layers` pre-norm blocks (causal multi-head attention, then an
MLP 4x wide with GELU), a final LayerNorm and a linear head over the vocabulary.

<bos> and other special tokens: the model has none built in. A question reserves ids for them in its vocabulary
(Q3: 64 colour tokens + <bos> = id 64, so vocab_size 65), feeds sequences that start with <bos>, and samples
from `prefix=[[bos]]`.

Sampling (`sample`) runs one loop two ways: without a cache every step re-runs the model on the whole prefix
(cost grows with the position); with a cache every step computes Q, K, V for the new token only and attends over
the keys and values kept from earlier steps. Both draw the same random numbers (Gumbel noise drawn up front), so
for the same generator they pick the same tokens.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.models import evaluating


@dataclass
class TransformerConfig:
    vocab_size: int = 65  # every token id the model reads or writes, special tokens (<bos>, ...) included
    block_size: int = 785  # context length: the longest sequence (with <bos>) the model can see
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.0

    @classmethod
    def from_dict(cls, config: dict) -> "TransformerConfig":
        """The fields from a saved config; older checkpoints spelled n_heads/n_layers "heads"/"layers", and Q5's
        gave the context as "context" and the vocabulary as its characters ("chars", + <bos> and <eos>)."""
        def pick(*names):
            return next(int(config[n]) for n in names if config.get(n) is not None)
        vocab = pick("vocab_size") if config.get("vocab_size") is not None else len(config["chars"]) + 2
        return cls(vocab_size=vocab, block_size=pick("block_size", "context"), d_model=pick("d_model"),
                   n_heads=pick("n_heads", "heads"), n_layers=pick("n_layers", "layers"))

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def attend(q, k, v, need_weights=False):
    """Causal attention. q, k, v: (B, h, T, hd) -> y (B, h, T, hd), and the weights (B, h, T, T) if asked.
    The explicit path (softmax of masked scores) is for looking at the weights; training uses the fused kernel."""
    if not need_weights:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True), None
    T = q.shape[-2]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, h, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    att = att.masked_fill(future, float("-inf")).softmax(-1)
    return att @ v, att


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # Q, K and V of all heads in one matmul
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, need_weights=False, kv_out=None):  # x: (B, T, C)
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, T, hd)
        if kv_out is not None:  # prefill: keep this layer's keys (transposed) and values for the steps that follow
            kv_out[0][..., :T] = k.transpose(-2, -1)
            kv_out[1][:, :, :T] = v
        y, att = attend(q, k, v, need_weights)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.drop(self.proj(y)), att

    def step(self, x, kt_cache, v_cache, t):
        """One new token at position t. x: (B, C); kt_cache (B, h, hd, T_max) and v_cache (B, h, T_max, hd)
        hold positions < t -> (B, C). Only this token's Q, K, V are computed; it attends over the cache."""
        B, C = x.shape
        q, k, v = self.qkv(x).view(B, 3, self.n_heads, self.head_dim).unbind(1)  # each (B, h, hd)
        kt_cache[..., t] = k
        v_cache[:, :, t] = v
        q = (q * (1.0 / math.sqrt(self.head_dim))).unsqueeze(2)  # (B, h, 1, hd)
        att = (q @ kt_cache[..., : t + 1]).softmax(-1)  # (B, h, 1, t+1)
        y = att @ v_cache[:, :, : t + 1]  # (B, h, 1, hd)
        return self.proj(y.view(B, C))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, need_weights=False, kv_out=None):
        a, att = self.attn(self.ln1(x), need_weights, kv_out)
        x = x + a
        return x + self.mlp(self.ln2(x)), att


class KVCache:
    """Keys and values of every layer, preallocated for the whole sequence: kt (n_layers, B, h, hd, T_max) and
    v (n_layers, B, h, T_max, hd); `pos` is the number of positions filled. A cached step is bound by reading the
    cache, so the layout serves those reads: keys are kept transposed, so q @ kt reads each head's keys as hd
    long rows (measured ~8% faster per run than q @ k.T here), and values as t rows of hd."""

    def __init__(self, cfg: TransformerConfig, batch: int, max_len: int | None = None, device=None,
                 dtype=torch.float32):
        T = max_len or cfg.block_size
        L, h, hd = cfg.n_layers, cfg.n_heads, cfg.d_model // cfg.n_heads
        self.kt = torch.empty((L, batch, h, hd, T), device=device, dtype=dtype)
        self.v = torch.empty((L, batch, h, T, hd), device=device, dtype=dtype)
        self.pos = 0


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.apply(self._init)
        for name, p in self.named_parameters():  # residual projections start small (GPT-2)
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, return_attn=False, cache: KVCache | None = None):
        """idx: (B, T) token ids -> logits (B, T, V); with return_attn also a list of (B, h, T, T) per layer.
        With a cache (empty), the keys and values of all T positions are stored in it (prefill)."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than the context ({self.config.block_size})")
        x = self.drop(self.tok_emb(idx) + self.pos_emb.weight[:T])  # (B, T, C)
        atts = []
        for layer, block in enumerate(self.blocks):
            x, att = block(x, return_attn, None if cache is None else (cache.kt[layer], cache.v[layer]))
            atts.append(att)
        if cache is not None:
            cache.pos = T
        logits = self.head(self.ln_f(x))
        return (logits, atts) if return_attn else logits

    @classmethod
    def from_config(cls, config: dict) -> "Transformer":
        """A checkpoint's config -> the Transformer (fresh weights) it was saved from."""
        return cls(TransformerConfig.from_dict(config))

    def step(self, tok, cache: KVCache):
        """Cached step: tok (B,) is the token at position cache.pos -> logits (B, V) for the next position."""
        t = cache.pos
        x = self.tok_emb(tok) + self.pos_emb.weight[t]  # (B, C)
        for layer, block in enumerate(self.blocks):
            x = x + block.attn.step(block.ln1(x), cache.kt[layer], cache.v[layer], t)
            x = x + block.mlp(block.ln2(x))
        cache.pos = t + 1
        return self.head(self.ln_f(x))

    def loss(self, seq, ignore_index: int = -100):
        """Next-token loss of sequences seq (B, T): mean cross-entropy in nats per predicted token
        (targets seq[:, 1:]; positions whose target is `ignore_index` are left out)."""
        return lm_loss(self(seq[:, :-1]), seq[:, 1:], ignore_index)


def lm_loss(logits, targets, ignore_index: int = -100):
    """logits (B, T, V), targets (B, T) -> mean cross-entropy in nats per target position."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index)


# ----------------------------------------------------------------------------- sampling
def forbid(*ids):
    """The one token-forbidding logits hook: these ids are never drawn (e.g. <bos>, which only starts a sequence;
    Q6 forbids a whole modality). Compose it inside a larger hook by calling it first."""
    ids = list(ids)

    def hook(step, tokens, logits):
        logits = logits.clone()
        logits[:, ids] = float("-inf")
        return logits
    return hook


def draw_logits(logits, step: int, tokens, top_k: int | None = None, logits_hook=None):
    """What the sampler draws the next token from, before the temperature: the model's logits (as float32), with
    all but the top_k set to -inf, then the logits hook. The draw is from softmax(draw_logits / temperature)
    (argmax at temperature 0); `draw_probs` gives those probabilities, the same numbers the sampler uses."""
    logits = logits.float()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if logits_hook is not None:
        logits = logits_hook(step, tokens, logits)
    return logits


def draw_probs(logits, temperature: float = 1.0):
    """The probabilities a draw at this temperature has over the tokens, from draw_logits (0 = greedy: all on the
    argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return (logits / temperature).softmax(-1)


def gumbel_noise(steps: int, n: int, vocab: int, generator=None, device=None):
    """The random numbers a sampling run uses: (steps, n, vocab) Gumbel(0, 1) noise, drawn in one go on the
    generator's device (so a CPU generator gives the same samples on any device), then moved to `device`.
    argmax(logits / temperature + noise) is a draw from softmax(logits / temperature)."""
    u = torch.rand((steps, n, vocab), generator=generator, device=generator.device if generator else None)
    return (-torch.log(-torch.log(u))).to(device)


@torch.inference_mode()
def sample(model: Transformer, n: int, length: int, prefix=None, use_cache: bool = True, generator=None,
           temperature: float = 1.0, top_k: int | None = None, logits_hook=None, step_callback=None,
           return_times: bool = False):
    """Draw n sequences of `length` new tokens after `prefix`.

    prefix: token ids, (t0,) shared by all n or (n, t0), e.g. [bos]; required (the model has no built-in <bos>).
    use_cache: True -> KV cache (prefill the prefix, then one token per step); False -> the whole prefix is run
        through the model at every step. Same random numbers either way, so the same tokens for the same generator.
    temperature: divides the logits; 0 means greedy (argmax). top_k: keep only the k most likely tokens.
    logits_hook(step, tokens_so_far (n, t0+step), logits (n, V)) -> logits, applied last (e.g. set
        forbidden tokens to -inf to stay within a modality).
    step_callback(step, tokens_so_far (n, t0+step+1), seconds): called after every step (live progress).
    Returns tokens (n, t0 + length) with the prefix, and with return_times also the seconds of every step
    (for the cached run the first step includes the prefill).
    """
    cfg = model.config
    device = next(model.parameters()).device
    if prefix is None:
        raise ValueError("sample needs a prefix, e.g. prefix=[bos_id]: the model has no built-in <bos>")
    prefix = torch.as_tensor(prefix, dtype=torch.long, device=device)
    if prefix.dim() == 1:
        prefix = prefix.expand(n, -1)
    if prefix.dim() != 2 or prefix.shape[0] != n or prefix.shape[1] < 1:
        raise ValueError(f"prefix must be (t0,) or (n, t0) with t0 >= 1, got shape {tuple(prefix.shape)}")
    if prefix.min() < 0 or prefix.max() >= cfg.vocab_size:
        raise ValueError(f"prefix holds ids outside the vocabulary [0, {cfg.vocab_size})")
    t0 = prefix.shape[1]
    if t0 + length > cfg.block_size:
        raise ValueError(f"prefix ({t0}) + length ({length}) exceeds the context ({cfg.block_size})")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= cfg.vocab_size:
        raise ValueError(f"top_k must be in [1, {cfg.vocab_size}], got {top_k}")

    tokens = torch.empty(n, t0 + length, dtype=torch.long, device=device)
    tokens[:, :t0] = prefix
    noise = gumbel_noise(length, n, cfg.vocab_size, generator, device) if temperature > 0 else None
    cache = KVCache(cfg, n, t0 + length, device, next(model.parameters()).dtype) if use_cache else None
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with evaluating(model):  # a served model is already in eval mode: left as it is (shared by threads)
        for s in range(length):
            t = t0 + s  # position of the token drawn in this step
            start = time.perf_counter()
            if not use_cache:
                logits = model(tokens[:, :t])[:, -1]
            elif s == 0:
                logits = model(tokens[:, :t], cache=cache)[:, -1]  # prefill
            else:
                logits = model.step(tokens[:, t - 1], cache)
            logits = draw_logits(logits, s, tokens[:, :t], top_k, logits_hook)
            if noise is None:
                tokens[:, t] = logits.argmax(-1)
            else:
                tokens[:, t] = ((logits if temperature == 1 else logits / temperature) + noise[s]).argmax(-1)
            sync()
            times.append(time.perf_counter() - start)
            if step_callback is not None:
                step_callback(s, tokens[:, : t + 1], times[-1])
    return (tokens, times) if return_times else tokens
