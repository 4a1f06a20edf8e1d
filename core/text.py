"""Character-level tokenizer for Q5: one token per distinct character of the training text, plus <bos> and <eos>.

Ids: 0 = <bos>, 1 = <eos>, then the training text's distinct characters in sorted order (2, 3, ...).
Every poem is wrapped as <bos> poem <eos>.

Characters never seen in training never crash anything. `encode` maps each one to a replacement, in this order:
  1. a small table of typographic look-alikes (’ ‘ → ', “ ” → ", – → -, … → ..., non-breaking space → space),
  2. its closest ASCII form: the Unicode NFKD decomposition without combining marks (é → e, Å → A),
  3. otherwise a space (or, if the training text had no space, its first character).
A replacement is used only if it is itself in the vocabulary; `unseen(text)` lists {char: replacement} so callers
can tell the learner what was changed, and `encode(text, strict=True)` raises instead of mapping.
"""
from __future__ import annotations

import unicodedata

import torch

BOS, EOS = "<bos>", "<eos>"
LOOKALIKES = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
              "\u2026": "...", "\u00a0": " ", "\t": "    ", "\r": ""}


class CharTokenizer:
    def __init__(self, chars: str):
        """chars: the vocabulary's characters (ids 2..). Build one from texts with `from_texts`."""
        if len(set(chars)) != len(chars) or not chars:
            raise ValueError("chars must be a non-empty string of distinct characters")
        self.chars = chars
        self.bos, self.eos = 0, 1
        self.stoi = {c: i + 2 for i, c in enumerate(chars)}
        self.vocab_size = len(chars) + 2
        self._fallback = " " if " " in self.stoi else chars[0]

    @classmethod
    def from_texts(cls, texts) -> "CharTokenizer":
        return cls("".join(sorted(set("".join(texts)))))

    # ------------------------------------------------------------------ unseen characters
    def replacement(self, c: str) -> str:
        """What an unseen character becomes (see the module docstring); '' drops it."""
        if c in self.stoi:
            return c
        for cand in (LOOKALIKES.get(c),
                     "".join(ch for ch in unicodedata.normalize("NFKD", c) if not unicodedata.combining(ch))):
            if cand is not None and all(ch in self.stoi for ch in cand):
                return cand
        return self._fallback

    def unseen(self, text: str) -> dict[str, str]:
        """{character: its replacement} for every character of `text` outside the vocabulary."""
        return {c: self.replacement(c) for c in dict.fromkeys(text) if c not in self.stoi}

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str, bos: bool = False, eos: bool = False, strict: bool = False) -> list[int]:
        bad = self.unseen(text)
        if bad and strict:
            raise ValueError("characters never seen in training: " + " ".join(repr(c) for c in bad))
        if bad:
            text = "".join(bad.get(c, c) for c in text)
        return [self.bos] * bos + [self.stoi[c] for c in text] + [self.eos] * eos

    def decode(self, ids, stop_at_eos: bool = True) -> str:
        """Token ids -> text; <bos> is dropped, and the text ends at the first <eos> (or, if not
        stop_at_eos, <eos> is written as a newline between poems)."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos:
                if stop_at_eos:
                    break
                out.append("\n")
            elif i != self.bos:
                out.append(self.chars[i - 2])
        return "".join(out)

    def stream(self, poems) -> torch.Tensor:
        """All poems wrapped as <bos> poem <eos> and concatenated: one long (N,) tensor of ids."""
        ids = []
        for p in poems:
            ids += self.encode(p, bos=True, eos=True)
        return torch.tensor(ids, dtype=torch.long)


def poem_windows(tok: CharTokenizer, poems, context: int, pad: int = -100) -> torch.Tensor:
    """Each poem, wrapped as <bos> poem <eos>, cut on its own by `windows`; rows of all poems stacked.
    So every poem's first row starts with <bos> at position 0 (as unconditional sampling does), no row spans two
    poems, and every token of a poem but its <bos> is a target exactly once. -> (rows, context + 1)."""
    rows = [windows(torch.tensor(tok.encode(p, bos=True, eos=True)), context, pad) for p in poems]
    return torch.cat(rows) if rows else torch.empty(0, context + 1, dtype=torch.long)


def windows(stream: torch.Tensor, context: int, pad: int = -100) -> torch.Tensor:
    """Cut a token stream into rows of context + 1 tokens with stride `context` (consecutive rows share one
    token), so each row gives `context` (input, target) pairs and every token but the stream's first is a
    target exactly once. The last row is padded with `pad` (a target the loss ignores). -> (rows, context + 1)."""
    n = len(stream)
    rows = max(1, -(-(n - 1) // context))  # ceil((n - 1) / context)
    out = torch.full((rows, context + 1), pad, dtype=torch.long)
    for r in range(rows):
        chunk = stream[r * context: r * context + context + 1]
        out[r, : len(chunk)] = chunk
    return out
