"""Generation one token at a time, with the distribution the sampler draws from at every step (Q3, Q5, Q6 pages).

    st = Stepper(model, prefix=[bos], logits_hook=forbid(bos))
    p = st.probs(temperature=0.8, top_k=10)    # (V,) what the next token is drawn from, reshaped live
    st.push(st.choice(0.8, 10, seed=0))        # draw it (or push any allowed token you pick) and move on

It runs the model exactly as the cached sampler does (`sample(..., use_cache=True)`): the prefix through the model
once, filling a KV cache, then one `model.step` per token; the probabilities come from the sampler's own
`draw_logits` and `draw_probs`. The raw logits of the current position are kept, so changing the temperature or
top-k reshapes the bars without running the model again.
"""
from __future__ import annotations

import torch

from .models.transformer import KVCache, Transformer, draw_logits, draw_probs, gumbel_noise


class Stepper:
    def __init__(self, model: Transformer, prefix, logits_hook=None):
        self.model = model.eval()
        self.hook = logits_hook
        self.device = next(model.parameters()).device
        self.tokens = [int(t) for t in prefix]
        if not self.tokens:
            raise ValueError("a prefix is needed (e.g. [bos]): the model has no built-in <bos>")
        cfg = model.config
        if len(self.tokens) >= cfg.block_size:
            raise ValueError(f"the prefix fills the whole context ({cfg.block_size} tokens)")
        self.cache = KVCache(cfg, 1, cfg.block_size, self.device, next(model.parameters()).dtype)
        self.t0 = len(self.tokens)
        with torch.inference_mode():
            self.raw = model(torch.tensor([self.tokens], device=self.device), cache=self.cache)[:, -1].float()

    @property
    def step(self) -> int:
        """How many tokens have been added after the prefix."""
        return len(self.tokens) - self.t0

    @property
    def full(self) -> bool:
        return len(self.tokens) >= self.model.config.block_size

    def logits(self, top_k: int | None = None) -> torch.Tensor:
        """(V,) the sampler's logits for the next token before the temperature (top-k, then the hook)."""
        tokens = torch.tensor([self.tokens], device=self.device)
        return draw_logits(self.raw, self.step, tokens, top_k, self.hook)[0]

    def probs(self, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
        """(V,) the probabilities the next token is drawn from at this temperature and top-k."""
        return draw_probs(self.logits(top_k), temperature)

    def choice(self, temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> int:
        """The token a draw picks at this step: argmax(logits / temperature + Gumbel noise), the sampler's own rule,
        with the noise fixed by (seed, step), so the choice shown before drawing is the one drawn, and changing
        the temperature moves it only as it moves the probabilities."""
        logits = self.logits(top_k)
        if temperature == 0:
            return int(logits.argmax())
        gen = torch.Generator().manual_seed(int(seed) * 100003 + self.step)
        noise = gumbel_noise(1, 1, logits.shape[-1], gen, logits.device)[0, 0]
        return int((logits / temperature + noise).argmax())

    def push(self, token: int) -> None:
        """Append a token (it must be allowed: probability > 0 at temperature 1) and compute the next logits."""
        if self.full:
            raise ValueError("the context is full: nothing more can be added")
        if not torch.isfinite(self.logits()[int(token)]):
            raise ValueError(f"token {token} is not allowed here")
        self.tokens.append(int(token))
        if not self.full:
            with torch.inference_mode():
                self.raw = self.model.step(torch.tensor([int(token)], device=self.device), self.cache).float()
