"""Q4's tokens: 28x28x3 images in 0..3 <-> 7x7 grids of codebook indices, and where a tokenizer comes from.

    load_tokenizer("pretrained", dataset="mnist-v2")   # the shipped one; or a source, a shipped name, a run id
    tokenize(tokenizer, images) -> (N, 49) token ids; with_bos(tokens, K) -> (N, 50), <bos> = K

Shared by Q4b, Q6, the Q4 page and the codebook lab.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import sources
from ...context import RunContext
from ...models.vqvae import VQTokenizer, VQVAEConfig
from ...train import stop_check

IMAGE_SHAPE = (28, 28, 3)
TOKENS = 49            # a 7x7 grid per image


def pretrained_tokenizer_name(dataset: str) -> str:
    return f"vqvae-{dataset}"


class TokenizerMissing(sources.SourceMissing):
    """The tokenizer asked for does not exist (not shipped, no such run, not finished, wrong data set)."""


# ----------------------------------------------------------------------------------------------- shared helpers
def check_images(x, what: str = "images") -> np.ndarray:
    """(N,28,28,3) numbers in 0..3 -> uint8; anything else raises a ValueError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{what} must have shape (N, 28, 28, 3) (28x28 colour images); got {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{what} are empty")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == bool:
        raise ValueError(f"{what} must hold numbers in 0..3; got dtype {x.dtype}")
    lo, hi = x.min(), x.max()
    if not (0 <= lo and hi <= 3):
        raise ValueError(f"{what} values must lie in 0..3 (2 bits per channel); got {lo}..{hi}")
    if np.issubdtype(x.dtype, np.floating) and not np.array_equal(x, np.round(x)):
        raise ValueError(f"{what} must hold whole numbers 0..3")
    return x.astype(np.uint8, copy=False)


def to_images(x_hat) -> np.ndarray:
    """Decoder outputs (~0..3 floats) -> uint8 images in 0..3."""
    return np.clip(np.rint(np.asarray(x_hat)), 0, 3).astype(np.uint8)


def pairs(originals, reconstructions, ncols: int = 10) -> np.ndarray:
    """Interleave rows: ncols originals, then their reconstructions, and so on -> (2N,H,W,C)."""
    rows = []
    for i in range(0, len(originals), ncols):
        rows += [originals[i:i + ncols], reconstructions[i:i + ncols]]
    return np.concatenate(rows)


# ----------------------------------------------------------------------------------------------- tokenizers
def tokenizer_config(hp: dict) -> VQVAEConfig:
    return VQVAEConfig.preset(hp["model_size"], n_embeddings=int(hp["n_embeddings"]),
                              embedding_dim=int(hp["embedding_dim"]), ema_decay=0.99 if hp["ema"] else 0.0)


def tokenizer_source(value: str, dataset: str | None) -> str:
    """The `tokenizer` field's value -> a model source: "pretrained" (or empty) is the one shipped for the data
    set; anything else (a source, a shipped name, a run id) is passed on."""
    value = (value or "").strip()
    if value in ("", "pretrained"):
        if dataset is None:
            raise TokenizerMissing("say which data set's pretrained tokenizer to use")
        return f"pretrained:{pretrained_tokenizer_name(dataset)}"
    return value


def find_tokenizer(value: str, dataset: str | None = None, runs_root=None) -> sources.Found:
    """Where the tokenizer `value` names lives (a q4a model, of `dataset` when given). Raises TokenizerMissing
    with a message that says what to do."""
    try:
        return sources.resolve(tokenizer_source(value, dataset), "q4a", dataset, runs_root)
    except sources.SourceMissing as e:
        if (value or "").strip() in ("", "pretrained"):
            raise TokenizerMissing(f"no pretrained tokenizer shipped for {dataset} yet — train one on the "
                                   f"Tokenizer tab first, then give its run id here") from None
        raise TokenizerMissing(f"{e} (train a tokenizer on the Tokenizer tab and give its run id)") from None


def load_tokenizer(value: str, device: str = "cpu", dataset: str | None = None, runs_root=None) -> VQTokenizer:
    """A frozen VQTokenizer from "pretrained" (with `dataset`), a source, a shipped q4a name or a q4a run id."""
    found = find_tokenizer(str(value), dataset, runs_root)
    model, _ = sources.load(found.source, device, runs_root, questions="q4a")
    return VQTokenizer(model)


def available_tokenizers(dataset: str, runs_root=None, owner: str | None = None) -> list[tuple[str, str]]:
    """[(value for the `tokenizer` field, label)] for this data set: the shipped one, then finished q4a runs (those
    `owner` may see; None = all)."""
    default = pretrained_tokenizer_name(dataset)
    shipped = sorted(sources.shipped("q4a", dataset), key=lambda e: e["name"] != default)
    out = [("pretrained" if e["name"] == default else e["name"], f"pretrained ({e['name']})") for e in shipped]
    for r in sources.finished_runs("q4a", dataset, runs_root, owner=owner):
        res = r["status"].get("result") or {}
        mse = f", test MSE {res['test_mse']:.3f}" if "test_mse" in res else ""
        out.append((r["id"], f"run {r['id']} (K={r['spec']['hparams'].get('n_embeddings')}{mse})"))
    return out


# ----------------------------------------------------------------------------------------------- tokens
def tokenize(vqvae, images, batch_size: int = 1000, progress=None, check=None) -> np.ndarray:
    """images (N,28,28,3) -> (N,49) int64 token ids in 0..K-1, in batches; progress(frac) after each;
    check() before each (e.g. core.train.stop_check: raises to stop)."""
    out = []
    for i in range(0, len(images), batch_size):
        if check is not None:
            check()
        z = np.asarray(vqvae.quantize(images[i:i + batch_size]))
        if z.shape != (len(images[i:i + batch_size]), 7, 7):
            raise ValueError(f"vqvae.quantize must return (B, 7, 7) indices; got {z.shape}")
        out.append(z.reshape(len(z), TOKENS).astype(np.int64))
        if progress is not None:
            progress(min(i + batch_size, len(images)) / len(images))
    tokens = np.concatenate(out)
    if tokens.min() < 0 or tokens.max() >= vqvae.n_embeddings:
        raise ValueError(f"token ids must lie in 0..{vqvae.n_embeddings - 1}; got {tokens.min()}..{tokens.max()}")
    return tokens


def tokenize_parts(vqvae, parts: dict, ctx: RunContext, shipped_sha256: str | None = None) -> dict:
    """{part: images, or (images, the rows used)} -> {part: (N,49) tokens of the rows used}, with progress.

    With `shipped_sha256` (a shipped tokenizer, verified against the manifest) the tokens are kept in the data
    cache, per image (TokenCache): a later run of anyone on this server tokenizes only images never seen, and the
    run keeps no copy (a Q4b run's copy was 23 of its 28 MB). A run's own tokenizer's tokens are kept as
    tokens_<part>.npy in the run folder (when the context has one), so a restarted run does not tokenize again."""
    tokens = {}
    for i, (part, x) in enumerate(parts.items()):
        images, rows = x if isinstance(x, tuple) else (x, None)
        path = None if shipped_sha256 else ctx.path(f"tokens_{part}.npy")
        if path is not None and path.exists():
            tokens[part] = np.load(path, allow_pickle=False)
            continue
        what = f"tokenizing the {part} images"
        progress = lambda f, i=i, what=what: ctx.progress((i + f) / len(parts), what)  # noqa: E731
        check = stop_check(ctx, what)
        if shipped_sha256:
            tokens[part] = TokenCache(shipped_sha256, images, vqvae.n_embeddings).tokens(
                vqvae, rows, progress=progress, check=check, log=lambda m: ctx.emit("log", msg=m))
        else:
            tokens[part] = tokenize(vqvae, images if rows is None else images[rows], progress=progress, check=check)
        if path is not None:
            np.save(path, tokens[part])
    return tokens


class TokenCache:
    """The tokens a shipped tokenizer gives a fixed array of images, kept in the data cache (core.data.store) as one
    (N,49) int16 file, -1 where an image was not tokenized yet. The file's name is made of the tokenizer's checksum
    and the images' checksum only (nothing a learner typed); a file that does not read back as such an array (torn,
    edited, another shape or range) is ignored and rewritten. Writes are atomic; two runs filling it at once can
    only each keep what the other added less (and tokenize it again later)."""

    def __init__(self, tokenizer_sha256: str, images: np.ndarray, n_embeddings: int):
        import hashlib

        from ...data import store

        self.images, self.K = images, int(n_embeddings)
        self.tokenized = 0   # images the last `tokens` call had to tokenize
        digest = hashlib.sha256(np.ascontiguousarray(images).view(np.uint8).data).hexdigest()
        self.path = store.path("tokens", f"{tokenizer_sha256[:20]}-{digest[:20]}-{len(images)}.npy")

    def load(self) -> np.ndarray:
        fresh = np.full((len(self.images), TOKENS), -1, dtype=np.int16)
        try:
            have = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return fresh
        if have.shape != fresh.shape or have.dtype != np.int16 or have.min() < -1 or have.max() >= self.K:
            return fresh
        return have

    def tokens(self, vqvae, rows=None, progress=None, check=None, log=None) -> np.ndarray:
        """(len(rows), 49) int64 tokens of images[rows] (all images when rows is None), tokenizing only the missing."""
        from ...data import store

        have = self.load()
        rows = np.arange(len(self.images)) if rows is None else np.asarray(rows)
        missing = rows[(have[rows] < 0).any(1)]
        self.tokenized = len(missing)
        if len(missing):
            if log is not None:
                log(f"tokens: {len(rows) - len(missing):,} images from this server's token cache, "
                    f"{len(missing):,} to tokenize")
            have[missing] = tokenize(vqvae, self.images[missing], progress=progress, check=check)
            try:
                with store.atomic_path(self.path) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, have)
            except OSError as e:   # a read-only or full cache: the run goes on, it only tokenizes again next time
                if log is not None:
                    log(f"tokens not kept in the cache ({e.strerror or e})")
        elif log is not None:
            log(f"tokens: all {len(rows):,} images from this server's token cache")
        if progress is not None:
            progress(1.0)
        return have[rows].astype(np.int64)


def warm_cache(log=print, device: str = "cpu") -> int:
    """Tokenize every fetched data set that a question reads through a shipped tokenizer (a `tokenizer` field) into
    the data cache, so the first Q4b and Q6 runs on this server start in seconds instead of minutes. Data sets not
    fetched and tokenizers not shipped are skipped with a line. Returns the number of images tokenized now."""
    import time

    from ... import data, questions

    done, total = set(), 0
    for q in map(questions.get, questions.REGISTRY):
        if "tokenizer" not in {f.name for f in q.fields}:
            continue
        for ds in q.datasets:
            try:
                found = find_tokenizer("pretrained", ds)
                arrays = data.load(ds)
            except (TokenizerMissing, data.DataNotFetched) as e:
                log(f"tokens for {ds}: skipped ({e})")
                continue
            if found.sha256 is None:
                continue
            tok = load_tokenizer(found.source, device)
            for part, images in (("train", arrays[0]), ("test", arrays[1])):
                cache = TokenCache(found.sha256, check_images(images, f"{ds} {part} images"), tok.n_embeddings)
                if cache.path in done:
                    continue
                done.add(cache.path)
                t0 = time.time()
                cache.tokens(tok, log=lambda m, ds=ds, part=part: log(f"{ds} {part} {m}"))
                total += cache.tokenized
                log(f"{ds} {part}: {cache.tokenized:,} of {len(images):,} images tokenized now "
                    f"({time.time() - t0:.0f} s), in {cache.path}")
    return total


def with_bos(tokens: np.ndarray, bos: int) -> torch.Tensor:
    """(N,49) -> (N,50) long tensor starting with <bos>."""
    t = torch.as_tensor(tokens, dtype=torch.long)
    return torch.cat([torch.full((len(t), 1), bos, dtype=torch.long), t], 1)
