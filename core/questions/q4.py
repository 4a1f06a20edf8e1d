"""Q4 — (a) a VQ-VAE tokenizer: 28x28x3 image <-> 7x7 grid of codebook indices; (b) a transformer on the tokens.

q4a ("Tokenizer") trains core.models.vqvae.VQVAE through core.train.fit on recon + VQ loss. Its losses are
squared errors in the 0..3 pixel scale, NOT nats: the result's `test_loss` is the test-set reconstruction MSE
(with "unit": "mse"). Events besides fit's: per minibatch "vq" {step, recon, perplexity, usage}; per epoch (0 =
before training) "vq_test" {epoch, recon, wrong, usage, perplexity} over the whole test set; a preview grid
"recon_epoch<e>" (rows of 10 originals, then their reconstructions); at the end "reconstructions" (50 pairs).
Checkpoint config: the VQVAEConfig fields, so `core.models.vqvae.load_tokenizer` reads it too.

q4b ("Token transformer") tokenizes the data set once with a tokenizer — "pretrained" (the shipped
`vqvae-<dataset>`), another shipped q4a name, or the id of a finished q4a run — caching the tokens in the run
folder, then trains the shared transformer on <bos> + 49 tokens (vocab = K + 1, <bos> = id K). Loss in nats
per token (an untrained model gives ≈ ln(K + 1); the course's reference is 3.083 on its colored MNIST).
Samples never contain <bos> and are decoded to images by the same tokenizer.
"""
from __future__ import annotations

import math
from dataclasses import asdict, fields as dc_fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.transformer import Transformer, TransformerConfig, sample
from ..models.vqvae import VQVAE, VQTokenizer, VQVAEConfig, usage_stats, vqvae_loss
from ..train import NullContext, RunCancelled, TrainConfig, fit
from .base import Field, Question, transformer_fields

DATASETS = ("mnist-colored", "mnist-v2")
IMAGE_SHAPE = (28, 28, 3)
TOKENS = 49            # a 7x7 grid per image
N_FINAL = 100          # the deliverable: 100 samples as a 10x10 grid
PREVIEW = 20           # test images in each epoch's reconstruction preview


def pretrained_tokenizer_name(dataset: str) -> str:
    return f"vqvae-{dataset}"


class TokenizerMissing(ValueError):
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


def subset(x: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded random share of the rows (all of them for fraction 1), in their original order."""
    keep = max(1, round(fraction * len(x)))
    if keep >= len(x):
        return x
    return x[np.sort(np.random.default_rng(seed).permutation(len(x))[:keep])]


def load_images(dataset: str):
    from .. import data

    out = data.load(dataset)
    return out[0], out[1]


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


def build_tokenizer(config: dict) -> VQVAE:
    """A q4a checkpoint's config (VQVAEConfig fields; other keys ignored) -> VQVAE with fresh weights."""
    names = {f.name for f in dc_fields(VQVAEConfig)}
    return VQVAE(VQVAEConfig(**{k: v for k, v in config.items() if k in names}))


def _runs_root(runs_root=None) -> Path:
    from ..runs import default_root

    return Path(runs_root) if runs_root else default_root()


def resolve_tokenizer(source: str, dataset: str | None = None, runs_root=None) -> dict:
    """Where a tokenizer lives. source: "pretrained" (the shipped vqvae-<dataset>), a shipped q4a checkpoint
    name, the id of a finished q4a run, or a run folder path. -> {"source", "label", "path", "sha256", "dataset"}.
    Raises TokenizerMissing with a message that says what to do."""
    from .. import checkpoints

    source = (source or "").strip()
    if source in ("", "pretrained"):
        if dataset is None:
            raise TokenizerMissing("say which data set's pretrained tokenizer to use")
        name = pretrained_tokenizer_name(dataset)
        if not checkpoints.find(name=name):
            raise TokenizerMissing(f"no pretrained tokenizer shipped for {dataset} yet — train one on the "
                                   f"Tokenizer tab first, then give its run id here")
        source = name
    entries = checkpoints.find(name=source)
    if entries:
        e = entries[0]
        if e["question"] != "q4a":
            raise TokenizerMissing(f"{source} is a {e['question']} checkpoint, not a tokenizer (q4a)")
        if dataset and e["dataset"] != dataset:
            raise TokenizerMissing(f"{source} was trained on {e['dataset']}, not {dataset}")
        return {"source": f"pretrained:{source}", "label": f"pretrained {source}", "dataset": e["dataset"],
                "path": str(checkpoints.PRETRAINED / e["file"]), "sha256": e.get("sha256")}
    from ..runs import read_json

    run_dir = Path(source) if "/" in source else _runs_root(runs_root) / source
    spec = read_json(run_dir / "spec.json") if source and run_dir.is_dir() else None
    if not spec:
        raise TokenizerMissing(f"{source!r} is neither \"pretrained\", a shipped tokenizer nor a run id "
                               f"(train a tokenizer on the Tokenizer tab and give its run id)")
    if spec.get("question") != "q4a":
        raise TokenizerMissing(f"run {run_dir.name} is a {spec.get('question')} run, not a tokenizer (q4a) run")
    state = (read_json(run_dir / "status.json") or {}).get("state", "queued")
    if state != "done":
        raise TokenizerMissing(f"tokenizer run {run_dir.name} is {state}, not finished: wait for it or pick another")
    if dataset and spec.get("dataset") != dataset:
        raise TokenizerMissing(f"tokenizer run {run_dir.name} was trained on {spec.get('dataset')}, not {dataset}")
    path = run_dir / "model.safetensors"
    if not path.exists():
        raise TokenizerMissing(f"tokenizer run {run_dir.name} has no checkpoint (model.safetensors)")
    return {"source": f"run:{run_dir.name}", "label": f"run {run_dir.name}", "dataset": spec.get("dataset"),
            "path": str(path), "sha256": None}


def load_resolved_tokenizer(where: dict, device: str = "cpu") -> VQTokenizer:
    """The VQTokenizer at a `resolve_tokenizer` answer (checked against its sha256 when shipped)."""
    from ..checkpoints import CheckpointError, load_into, read_checkpoint

    state, config, _ = read_checkpoint(where["path"], where["sha256"])
    try:
        model = build_tokenizer(config)
    except TypeError as e:
        raise CheckpointError(f"{where['label']} is not a VQ-VAE tokenizer checkpoint ({e})") from None
    load_into(model, state, where["label"])
    return VQTokenizer(model.to(device))


def load_tokenizer_checkpoint(name_or_run_dir: str, device: str = "cpu", dataset: str | None = None,
                              runs_root=None) -> VQTokenizer:
    """A frozen VQTokenizer from "pretrained" (with `dataset`), a shipped q4a name, a q4a run id or run folder."""
    return load_resolved_tokenizer(resolve_tokenizer(str(name_or_run_dir), dataset, runs_root), device)


def available_tokenizers(dataset: str, runs_root=None) -> list[tuple[str, str]]:
    """[(value for the `tokenizer` field, label)] for this data set: the shipped one, then finished q4a runs."""
    from .. import checkpoints
    from ..runs import read_json

    out = [("pretrained", f"pretrained ({e['name']})") for e in checkpoints.find(question="q4a", dataset=dataset)
           if e["name"] == pretrained_tokenizer_name(dataset)]
    out += [(e["name"], f"pretrained ({e['name']})") for e in checkpoints.find(question="q4a", dataset=dataset)
            if e["name"] != pretrained_tokenizer_name(dataset)]
    root = _runs_root(runs_root)
    if root.exists():
        for d in sorted(root.iterdir(), reverse=True):
            spec = (read_json(d / "spec.json") if d.is_dir() else None) or {}
            if spec.get("question") == "q4a" and spec.get("dataset") == dataset \
                    and (read_json(d / "status.json") or {}).get("state") == "done" and (d / "model.safetensors").exists():
                res = (read_json(d / "status.json") or {}).get("result") or {}
                mse = f", test MSE {res['test_mse']:.3f}" if "test_mse" in res else ""
                out.append((d.name, f"run {d.name} (K={spec['hparams'].get('n_embeddings')}{mse})"))
    return out


# ----------------------------------------------------------------------------------------------- the codebook lab
LAB_METHODS = ("most_used", "kmeans")


def lab_usage(tok: VQTokenizer, z_e: torch.Tensor) -> np.ndarray:
    """(K,) how often each code is chosen for encoder outputs z_e (B,7,7,D)."""
    return np.bincount(tok.quantize_latents(z_e).cpu().numpy().ravel(), minlength=tok.n_embeddings)


def lab_tokenizer(tok: VQTokenizer, z_usage: torch.Tensor, k: int | None = None, method: str = "most_used",
                  off=(), scale: float = 0.0, seed: int = 0, usage: np.ndarray | None = None) -> VQTokenizer:
    """The codebook lab's edit, in this order: switch the codes `off` off; shrink to k codes ("most_used" keeps
    the k codes used most on z_usage, indices unchanged; "kmeans" makes k new codes, renumbered 0..k-1); add
    noise of `scale` x the codebook's rms to every code. The original tokenizer is never changed.
    usage: lab_usage of the tokenizer with `off` switched off, if already counted."""
    from .. import codebook as cb

    if method not in LAB_METHODS:
        raise ValueError(f"method must be one of {', '.join(LAB_METHODS)}; got {method!r}")
    out = cb.switch_off(tok, list(off)) if len(off) else tok
    if k is not None and (isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= out.n_active):
        raise ValueError(f"K must lie in 1..{out.n_active} (the codes still switched on); got {k}")
    if k is not None and int(k) < out.n_active:
        usage = lab_usage(out, z_usage) if usage is None else usage
        out = (cb.keep_most_used(out, None, int(k), usage=usage) if method == "most_used"
               else cb.kmeans_shrink(out, None, int(k), seed=seed, usage=usage))
    return cb.perturb(out, scale, seed) if scale > 0 else out


def lab_error(tok: VQTokenizer, images, z_e: torch.Tensor) -> dict:
    """Reconstruction error of the images (z_e: their encoder outputs): mse (0..3 scale), wrong (pixel share)."""
    from .. import codebook as cb

    return cb.reconstruction_error(tok, images, z_e)


def lab_curve(tok: VQTokenizer, z_usage, images, z_eval, ks, method="most_used", off=(), scale=0.0,
              seed=0) -> list[dict]:
    """Rate-distortion: for each K, the lab's edit with that K -> {k, bits (49 log2 K), mse, wrong}."""
    from .. import codebook as cb

    usage = lab_usage(cb.switch_off(tok, list(off)) if len(off) else tok, z_usage)  # the same for every K
    rows = []
    for k in ks:
        t = lab_tokenizer(tok, z_usage, k, method, off, scale, seed, usage)
        rows.append({"k": int(k), "bits": TOKENS * math.log2(k), **lab_error(t, images, z_eval)})
    return rows


def token_picture(idx, n_codes: int, cell: int = 4) -> np.ndarray:
    """Token grids (B,7,7) -> uint8 RGB (B,7*cell,7*cell,3): one fixed random colour per code index."""
    palette = np.random.default_rng(1234).integers(30, 256, (n_codes, 3)).astype(np.uint8)
    return palette[np.asarray(idx)].repeat(cell, 1).repeat(cell, 2)


# ----------------------------------------------------------------------------------------------- q4a: the tokenizer
A_FIELDS = (
    Field("model_size", "full", choices=("full", "small"), label="model size",
          help="full = the original tokenizer's channels (128 and 256); small = 32 and 64, ~5x faster on a CPU"),
    Field("n_embeddings", 1024, 2, 4096, label="codebook size", help="K codes; each image becomes 49 of them"),
    Field("embedding_dim", 64, 1, 512, label="embedding dim", help="numbers per code vector"),
    Field("epochs", 15, 1, 500, help="passes over the (kept) 60,000 training images"),
    Field("batch_size", 128, 1, 4096, label="batch size"),
    Field("lr", 1e-3, 1e-6, 1.0, label="learning rate", help="Adam; cosine decay to 0 over the run"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction", help="share of the training images used"),
    Field("ema", True, label="EMA codebook",
          help="on: codes are moving averages of the encoder outputs they receive (decay 0.99); off: codes are "
               "learned by the codebook loss, as in the original"),
)
A_PRESETS = {  # the first is the default on a CPU, homework on a GPU
    "quick": {"model_size": "small", "epochs": 3, "lr": 2e-3, "data_fraction": 0.75},  # ~2 min on 2 CPU cores
    "homework": {},  # the original's shape: 128/256 channels, 1024 x 64 codes; 15 epochs on a GPU
}


class VQObjective:
    """fit's loss_fn: recon MSE + VQ loss. In training it emits a "vq" event per minibatch; in evaluation it
    tallies the whole test set (squared error, wrong pixels, code counts), read by `flush`."""

    def __init__(self, ctx, n_embeddings: int):
        self.ctx, self.K, self.step = ctx, n_embeddings, 0
        self.history = []  # test metrics per epoch, epoch 0 = before training
        self._reset()

    def _reset(self):
        self.sse, self.wrong, self.n, self.counts = 0.0, 0.0, 0, torch.zeros(self.K, dtype=torch.long)

    def __call__(self, model, x):
        if model.training:
            if self.n:  # the test set was scored before training began
                self.flush(0)
            out = vqvae_loss(model, x)
            self.step += 1
            self.ctx.emit("vq", step=self.step, recon=out.recon.item(), perplexity=out.perplexity, usage=out.usage)
            return out.total
        x_hat, idx, vq, _, _ = model(x)
        x = torch.as_tensor(x).to(x_hat.device).float()
        recon = F.mse_loss(x_hat, x)
        self.sse += recon.item() * x.numel()
        self.wrong += (x_hat.round().clamp(0, 3) != x).sum().item()
        self.n += x.numel()
        self.counts += torch.bincount(idx.flatten(), minlength=self.K).cpu()
        return recon + vq

    def flush(self, epoch: int) -> dict:
        """Test-set metrics of the last evaluation (and emit them as "vq_test")."""
        p = self.counts.float() / self.counts.sum().clamp(min=1)
        m = {"epoch": epoch, "recon": self.sse / max(self.n, 1), "wrong": self.wrong / max(self.n, 1),
             "usage": int((self.counts > 0).sum()),
             "perplexity": math.exp(-(p * p.clamp(min=1e-10).log()).sum().item())}
        self.ctx.emit("vq_test", **m)
        self.history.append(m)
        self._reset()
        return m


class TokenizerQ(Question):
    key, title = "q4a", "VQ-VAE tokenizer"
    datasets = DATASETS
    fields = A_FIELDS
    presets = A_PRESETS
    unit = "mse"

    def train(self, train, test, hp: dict, seed: int = 0, device: str = "cpu", ctx=None):
        """Fit a tokenizer on image arrays; returns (model, TrainResult, test metrics per epoch (0 = before))."""
        hp = {**self.defaults(), **hp}
        ctx = ctx or NullContext()
        train = subset(check_images(train, "training images"), hp["data_fraction"], seed)
        test = check_images(test, "test images")
        torch.manual_seed(seed)
        model = VQVAE(tokenizer_config(hp))
        objective = VQObjective(ctx, model.config.n_embeddings)
        preview = test[:PREVIEW]

        def on_epoch_end(epoch, m):
            objective.flush(epoch)
            if hasattr(ctx, "save_images"):
                m.eval()
                with torch.no_grad():
                    rec = to_images(m(preview)[0].cpu())
                ctx.save_images(f"recon_epoch{epoch}", pairs(preview, rec), ncols=10, levels=4, epoch=epoch)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"], schedule="cosine",
                          seed=seed, device=device)
        res = fit(model, objective, torch.as_tensor(train), torch.as_tensor(test), cfg, ctx, on_epoch_end)
        model.eval()
        return model, res, objective.history

    def run(self, spec, ctx) -> dict:
        train, test = load_images(spec.dataset)
        hp = {**self.defaults(), **spec.hparams}
        model, res, history = self.train(train, test, hp, spec.seed, ctx.device, ctx)
        last = history[-1]
        with torch.no_grad():
            shown = test[:50]
            ctx.save_images("reconstructions", pairs(shown, to_images(model(shown)[0].cpu())), ncols=10,
                            levels=4, final=True)
        ctx.save_checkpoint(model, asdict(model.config))
        metrics = {"test_mse": last["recon"], "test_wrong": last["wrong"], "test_usage": last["usage"],
                   "test_perplexity": last["perplexity"], "n_embeddings": model.config.n_embeddings}
        return {"test_loss": last["recon"], "unit": "mse",
                "note": "for the tokenizer, test_loss is the reconstruction MSE in the 0..3 pixel scale, not nats",
                **metrics, "start_mse": history[0]["recon"], "seconds": res.seconds, "metrics": metrics}


# ----------------------------------------------------------------------------------------------- q4b: the transformer
B_FIELDS = (
    Field("tokenizer", "pretrained",
          help="\"pretrained\" = the tokenizer shipped for this data set; or the id of a finished Tokenizer run"),
    *transformer_fields(4, epochs=(30, 500), batch=(128, 4096), warmup=1000, lr_min=1e-6,
                        epochs_help="passes over the tokenized training images",
                        batch_help="sequences of <bos> + 49 tokens per minibatch"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction", help="share of the training images used"),
    Field("samples_per_epoch", 20, 0, 100, label="samples per epoch", help="images drawn after every epoch"),
    Field("temperature", 1.0, 0.0, 5.0, help="for every sample (0 = greedy)"),
)
B_PRESETS = {  # the first is the default on a CPU, homework on a GPU
    "quick": {"d_model": 64, "heads": 4, "layers": 2, "epochs": 4, "batch_size": 64, "lr": 2e-3,  # ~2-3 min on
              "warmup_steps": 100, "data_fraction": 0.5, "samples_per_epoch": 10},               # 2 CPU cores
    "homework": {},  # the notebook's: d_model 128, 4 heads, 4 layers, 30 epochs, lr 1e-3, warm-up + cosine
}


def tokenize(vqvae, images, batch_size: int = 1000, progress=None, cancelled=None) -> np.ndarray:
    """images (N,28,28,3) -> (N,49) int64 token ids in 0..K-1, in batches; progress(frac) after each."""
    out = []
    for i in range(0, len(images), batch_size):
        if cancelled is not None and cancelled():
            raise RunCancelled("cancelled while tokenizing")
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


def with_bos(tokens: np.ndarray, bos: int) -> torch.Tensor:
    """(N,49) -> (N,50) long tensor starting with <bos>."""
    t = torch.as_tensor(tokens, dtype=torch.long)
    return torch.cat([torch.full((len(t), 1), bos, dtype=torch.long), t], 1)


def transformer_config(hp: dict, n_embeddings: int) -> dict:
    return {"question": "q4b", "n_embeddings": n_embeddings, "vocab_size": n_embeddings + 1, "bos": n_embeddings,
            "block_size": TOKENS + 1, **{k: int(hp[k]) for k in ("d_model", "heads", "layers")}}


def build_from_config(config: dict) -> Transformer:
    """A q4b checkpoint's config (as run() saves it) -> Transformer with fresh weights."""
    return Transformer(TransformerConfig(vocab_size=int(config["vocab_size"]), block_size=int(config["block_size"]),
                                         d_model=int(config["d_model"]), n_heads=int(config["heads"]),
                                         n_layers=int(config["layers"])))


def load_transformer_checkpoint(name_or_run_dir: str, device: str = "cpu", runs_root=None):
    """(Transformer, config) of a shipped q4b checkpoint name, a q4b run id or run folder. config["tokenizer"]
    names the tokenizer it was trained with (load it with load_tokenizer_checkpoint)."""
    from .. import checkpoints

    if checkpoints.find(name=name_or_run_dir):
        state, config, _ = checkpoints.load_pretrained(name_or_run_dir)
    else:
        d = Path(name_or_run_dir) if "/" in str(name_or_run_dir) else _runs_root(runs_root) / name_or_run_dir
        state, config, _ = checkpoints.read_checkpoint(d / "model.safetensors")
    model = checkpoints.load_into(build_from_config(config), state, str(name_or_run_dir))
    return model.to(device).eval(), config


def tokenizer_of(config: dict) -> str:
    """The `tokenizer` source a q4b checkpoint config points to ("pretrained:NAME" -> NAME, "run:ID" -> ID)."""
    return config["tokenizer"].split(":", 1)[1]


def sample_images(model: Transformer, vqvae, n: int, seed: int = 0, temperature: float = 1.0):
    """n token grids from <bos> (never <bos> again), decoded -> (uint8 images (n,28,28,3), tokens (n,7,7))."""
    bos = model.config.vocab_size - 1
    device = next(model.parameters()).device

    def no_bos(step, tokens, logits):
        logits[:, bos] = float("-inf")
        return logits

    gen = torch.Generator(device=device).manual_seed(seed)
    toks = sample(model, n, TOKENS, prefix=[bos], generator=gen, temperature=temperature,
                  logits_hook=no_bos)[:, 1:].reshape(n, 7, 7).cpu().numpy()
    return to_images(vqvae.decode(toks)), toks


class TokenTransformerQ(Question):
    key, title = "q4b", "Transformer on VQ tokens"
    datasets = DATASETS
    fields = B_FIELDS
    presets = B_PRESETS
    unit = "nats/token"

    def check(self, hp, dataset):
        errors = {}
        if hp["d_model"] % hp["heads"]:
            errors["heads"] = f"must divide d_model ({hp['d_model']} is not a multiple of {hp['heads']})"
        if dataset in self.datasets:
            try:
                resolve_tokenizer(hp["tokenizer"], dataset)
            except TokenizerMissing as e:
                errors["tokenizer"] = str(e)
        return errors

    def train(self, train, test, hp: dict, vqvae, seed: int = 0, device: str = "cpu", ctx=None, cache_dir=None):
        """Tokenize with `vqvae` (any object with n_embeddings, quantize, decode), then fit the transformer.
        Returns (model, TrainResult, info). Token arrays are cached in `cache_dir` when given."""
        hp = {**self.defaults(), **hp}
        ctx = ctx or NullContext()
        train = subset(check_images(train, "training images"), hp["data_fraction"], seed)
        test = check_images(test, "test images")
        K = int(vqvae.n_embeddings)
        progress = getattr(ctx, "progress", lambda frac, msg="": None)
        tokens = {}
        for i, (part, x) in enumerate((("train", train), ("test", test))):
            path = Path(cache_dir) / f"tokens_{part}.npy" if cache_dir else None
            if path is not None and path.exists():
                tokens[part] = np.load(path)
                continue
            tokens[part] = tokenize(vqvae, x, progress=lambda f, i=i, part=part: progress(
                (i + f) / 2, f"tokenizing the {part} images"), cancelled=ctx.cancelled)
            if path is not None:
                np.save(path, tokens[part])
        counts = np.bincount(tokens["train"].ravel(), minlength=K)
        info = {"n_embeddings": K, "vocab_size": K + 1, "ln_vocab": math.log(K + 1),
                "train_images": len(train), "codes_used_in_train": int((counts > 0).sum())}
        ctx.emit("meta", **info)

        torch.manual_seed(seed)
        model = build_from_config(transformer_config(hp, K))

        def on_epoch_end(epoch, m):
            n = hp["samples_per_epoch"]
            if n and hasattr(ctx, "save_images"):
                imgs, _ = sample_images(m, vqvae, n, seed + epoch, hp["temperature"])
                ctx.save_images(f"samples_epoch{epoch}", imgs, ncols=10, levels=4, epoch=epoch)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          warmup_steps=hp["warmup_steps"], schedule="cosine", seed=seed, device=device)
        res = fit(model, lambda m, s: m.loss(s), with_bos(tokens["train"], K), with_bos(tokens["test"], K),
                  cfg, ctx, on_epoch_end)
        return model.eval(), res, info

    def run(self, spec, ctx) -> dict:
        train, test = load_images(spec.dataset)
        hp = {**self.defaults(), **spec.hparams}
        where = resolve_tokenizer(hp["tokenizer"], spec.dataset, ctx.run_dir.parent)
        tok = load_resolved_tokenizer(where, ctx.device)
        ctx.emit("log", msg=f"tokenizer: {where['label']} ({tok.n_embeddings} codes)")
        model, res, info = self.train(train, test, hp, tok, spec.seed, ctx.device, ctx, cache_dir=ctx.run_dir)
        ctx.progress(0.0, f"drawing the {N_FINAL} final samples")
        imgs, toks = sample_images(model, tok, N_FINAL, spec.seed, hp["temperature"])
        np.save(ctx.path("sample_tokens.npy"), toks)
        ctx.save_images("samples", imgs, ncols=10, levels=4, final=True)
        ctx.save_checkpoint(model, {**transformer_config(hp, tok.n_embeddings), "dataset": spec.dataset,
                                    "tokenizer": where["source"], "tokenizer_sha256": where["sha256"]})
        final = res.test_losses[-1]
        metrics = {"tokenizer": where["source"], "start_loss": res.test_losses[0], **info}
        return {"test_loss": final, "unit": "nats/token", "bits_per_dim": final / math.log(2),
                "seconds": res.seconds, "tokenizer": where["label"], **info, "metrics": metrics}


TOKENIZER, TOKEN_TRANSFORMER = TokenizerQ(), TokenTransformerQ()
