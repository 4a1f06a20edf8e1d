"""Q6's constrained sampling: one logits hook (`constrain`) keeps every sample in its modality: six words, then
49 image codes, or the reverse; captions for images, images for captions, and pairs from nothing."""
from __future__ import annotations

import numpy as np
import torch

from ...models.transformer import Transformer, sample
from .vocab import SEQ_LEN, TOKENS, WORDS, UnknownWords, Vocab, split_sequence


def allowed(vocab: Vocab, tokens: torch.Tensor) -> torch.Tensor:
    """tokens so far (n, t) -> (n, V) bool: what may come at position t. The layout is fixed by the end token after
    <bos>: text first -> 6 words, <end of text>, 49 codes; image first -> 49 codes, <end of image>, 6 words."""
    n, t = tokens.shape
    mask = torch.zeros(n, vocab.size, dtype=torch.bool, device=tokens.device)
    if t == 1:
        mask[:, [vocab.eot, vocab.eoi]] = True
        return mask
    if t >= SEQ_LEN:
        raise ValueError(f"a Q6 sequence has {SEQ_LEN} tokens; nothing comes at position {t}")
    first = tokens[:, 1]
    if not bool(((first == vocab.eot) | (first == vocab.eoi)).all()):
        raise ValueError("the token after <bos> must be <end of text> or <end of image>")
    words = slice(vocab.n_codes, vocab.eot)
    codes = slice(0, vocab.n_codes)
    tf = first == vocab.eoi  # text first
    if 2 <= t < 2 + WORDS:
        mask[tf, words] = True
    elif t == 2 + WORDS:
        mask[tf, vocab.eot] = True
    else:
        mask[tf, codes] = True
    imf = ~tf
    if t < 2 + TOKENS:
        mask[imf, codes] = True
    elif t == 2 + TOKENS:
        mask[imf, vocab.eoi] = True
    else:
        mask[imf, words] = True
    return mask


def constrain(vocab: Vocab):
    """The logits hook that keeps every sample in the right modality (see `allowed`)."""
    def hook(step, tokens, logits):
        return logits.masked_fill(~allowed(vocab, tokens), float("-inf"))
    return hook


def _generate(model: Transformer, vocab: Vocab, prefix, n: int, seed: int, temperature: float,
              step_callback=None) -> torch.Tensor:
    device = next(model.parameters()).device
    prefix = torch.as_tensor(prefix, dtype=torch.long, device=device)
    gen = torch.Generator().manual_seed(int(seed))
    t0 = prefix.shape[-1]
    return sample(model, n, SEQ_LEN - t0, prefix=prefix, generator=gen, temperature=temperature,
                  logits_hook=constrain(vocab), step_callback=step_callback)


def _chunks(n: int, size: int = 500):
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def _complete(model, vocab: Vocab, opener: int, given, closer: int, seed: int, temperature: float,
              step_callback=None) -> torch.Tensor:
    """<bos> opener given closer, then whatever the sampler adds up to 58 tokens; in chunks of 500 -> (n, 58).
    step_callback: the sampler's (e.g. a cancel check)."""
    given = torch.as_tensor(np.asarray(given), dtype=torch.long)
    out = []
    for a, b in _chunks(len(given)):
        n = b - a
        prefix = torch.cat([torch.tensor([[vocab.bos, opener]]).expand(n, -1), given[a:b],
                            torch.full((n, 1), closer)], 1)
        out.append(_generate(model, vocab, prefix, n, seed + a, temperature, step_callback).cpu())
    return torch.cat(out)


def captions_for(model, vocab: Vocab, codes, seed: int = 0, temperature: float = 1.0, step_callback=None) -> list[str]:
    """Image codes (n,49) (or (n,7,7)) -> n captions drawn after <bos> <end of text> image <end of image>."""
    seqs = _complete(model, vocab, vocab.eot, np.asarray(codes).reshape(-1, TOKENS), vocab.eoi, seed, temperature,
                     step_callback)
    return [vocab.decode(s[-WORDS:]) for s in seqs]


def codes_for(model, vocab: Vocab, captions, seed: int = 0, temperature: float = 1.0, step_callback=None) -> np.ndarray:
    """Captions (n) -> image codes (n,7,7) drawn after <bos> <end of image> caption <end of text>. Raises
    UnknownWords before anything runs if a caption has words outside the vocabulary."""
    ids = [vocab.encode(c) for c in captions]
    seqs = _complete(model, vocab, vocab.eoi, np.reshape(ids, (-1, WORDS)), vocab.eot, seed, temperature, step_callback)
    return seqs[:, -TOKENS:].numpy().reshape(-1, 7, 7)


def readable(vocab: Vocab, captions) -> tuple[list[str], list[tuple[str, str]]]:
    """Captions the model can read, and (caption, why not) for each one it cannot: each line stands alone."""
    ok, bad = [], []
    for c in captions:
        try:
            vocab.encode(c)
            ok.append(c)
        except UnknownWords as e:
            bad.append((c, str(e)))
    return ok, bad


def unconditional(model, vocab: Vocab, n: int, seed: int = 0, temperature: float = 1.0, step_callback=None):
    """n pairs from <bos> alone -> (codes (n,7,7), captions, text_first (n,) bool: which modality came first)."""
    seqs = _generate(model, vocab, [vocab.bos], n, seed, temperature, step_callback).cpu()
    parts = [split_sequence(vocab, s) for s in seqs]
    return (np.stack([c for c, _ in parts]).reshape(-1, 7, 7), [vocab.decode(w) for _, w in parts],
            (seqs[:, 1] == vocab.eoi).numpy())


def stepper(model, vocab: Vocab, prefix):
    """Writing one token at a time under the same modality rule (`constrain`), with the sampler's own
    probabilities: a core.nexttoken.Stepper after `prefix` (e.g. <bos> <end of text> 49 codes <end of image>)."""
    from ...nexttoken import Stepper

    return Stepper(model, prefix, logits_hook=constrain(vocab))
