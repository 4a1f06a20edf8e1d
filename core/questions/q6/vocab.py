"""Q6's vocabulary and sequences: caption words and image codes in one vocabulary, the two layouts of a pair
(text first, image first) and the loss over them (see the package's docstring)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from ..q4.tokens import TOKENS   # 49 image tokens (7x7)

WORDS = 6              # every caption has six words
SEQ_LEN = 1 + 1 + WORDS + 1 + TOKENS  # 58: <bos>, an end token, the text, the other end token, the image


class UnknownWords(ValueError):
    """A caption the model cannot read: words outside its vocabulary, or not six words. Says which are allowed."""


# ------------------------------------------------------------------------------------------------ vocabulary
@dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]  # the caption words, sorted; word i has id n_codes + i
    n_codes: int            # K image codes, ids 0..K-1

    @classmethod
    def from_captions(cls, captions, n_codes: int, words=()) -> "Vocab":
        """The captions' words and `words` (those the language has, used or not: a model trained on captions that
        never say "normal" keeps the weights of one that did)."""
        return cls(tuple(sorted({w for c in captions for w in split(c)} | set(words))), int(n_codes))

    @property
    def eot(self) -> int:  # <end of text>
        return self.n_codes + len(self.words)

    @property
    def eoi(self) -> int:  # <end of image>
        return self.eot + 1

    @property
    def bos(self) -> int:
        return self.eot + 2

    @property
    def size(self) -> int:
        return self.eot + 3

    def is_word(self, ids):
        ids = torch.as_tensor(ids)
        return (ids >= self.n_codes) & (ids < self.eot)

    def encode(self, caption: str) -> list[int]:
        """A caption -> its six word ids; UnknownWords (listing the allowed words) for anything else."""
        words = split(caption)
        index = {w: i for i, w in enumerate(self.words)}
        unknown = [w for w in words if w not in index]
        if unknown:
            raise UnknownWords(f"not in the vocabulary: {', '.join(repr(w) for w in unknown)}. The model knows these "
                               f"{len(self.words)} words: {', '.join(self.words)}")
        if len(words) != WORDS:
            raise UnknownWords(f"a caption has exactly {WORDS} words (e.g. 'light green five on dark blue'); "
                               f"got {len(words)}")
        return [self.n_codes + index[w] for w in words]

    def decode(self, ids) -> str:
        return " ".join(self.words[int(i) - self.n_codes] if self.n_codes <= int(i) < self.eot else f"<{int(i)}>"
                        for i in ids)

    def config(self) -> dict:
        return {"words": list(self.words), "n_embeddings": self.n_codes}


def split(caption: str) -> list[str]:
    return re.findall(r"[a-z]+", str(caption).lower())


def vocab_from_config(config: dict) -> Vocab:
    return Vocab(tuple(config["words"]), int(config["n_embeddings"]))


# ------------------------------------------------------------------------------------------------ sequences
def sequences(vocab: Vocab, codes, words, text_first) -> torch.Tensor:
    """codes (N,49), word ids (N,6), text_first (N,) bool (or one bool) -> (N,58) long token sequences."""
    codes = torch.as_tensor(np.asarray(codes), dtype=torch.long).reshape(-1, TOKENS)
    words = torch.as_tensor(np.asarray(words), dtype=torch.long).reshape(-1, WORDS)
    n = len(codes)
    col = lambda v: torch.full((n, 1), v, dtype=torch.long)  # noqa: E731
    text = torch.cat([col(vocab.bos), col(vocab.eoi), words, col(vocab.eot), codes], 1)
    image = torch.cat([col(vocab.bos), col(vocab.eot), codes, col(vocab.eoi), words], 1)
    tf = torch.as_tensor(text_first, dtype=torch.bool).expand(n) if np.ndim(text_first) == 0 else \
        torch.as_tensor(np.asarray(text_first), dtype=torch.bool)
    return torch.where(tf[:, None], text, image)


def pair_layouts(vocab: Vocab, codes, words) -> torch.Tensor:
    """(N,2,58): every pair in both layouts (0 = text first, 1 = image first)."""
    return torch.stack([sequences(vocab, codes, words, True), sequences(vocab, codes, words, False)], 1)


def loss_fn(model, both):
    """both (B,2,58). Training: one layout per sequence, drawn 50/50 (torch's generator, seeded by fit); evaluation:
    both layouts of every pair. -> mean nats per predicted token (all 57 after <bos>)."""
    if model.training:
        pick = torch.randint(0, 2, (len(both),), device=both.device)
        seq = both[torch.arange(len(both), device=both.device), pick]
    else:
        seq = both.reshape(-1, SEQ_LEN)
    return model.loss(seq), len(both)


def split_sequence(vocab: Vocab, seq) -> tuple[np.ndarray, list[int]]:
    """A full 58-token sequence (either layout) -> (49 codes, 6 word ids)."""
    seq = [int(t) for t in seq]
    if seq[1] == vocab.eoi:
        return np.array(seq[9:9 + TOKENS]), seq[2:8]
    return np.array(seq[2:2 + TOKENS]), seq[3 + TOKENS:3 + TOKENS + WORDS]
