"""Q4 — (a) a VQ-VAE tokenizer: 28x28x3 image <-> 7x7 grid of codebook indices; (b) a transformer on the tokens.

q4a ("Tokenizer") trains core.models.vqvae.VQVAE through core.train.fit on recon + VQ loss. Its losses are
squared errors in the 0..3 pixel scale, NOT nats: the result's `test_loss` is the test-set reconstruction MSE
(with "unit": "mse"). Events besides fit's: per minibatch "vq" {step, recon, perplexity, usage}; per epoch (0 =
before training) "vq_test" {epoch, recon, wrong, usage, perplexity} over the whole test set; a preview grid
"recon_epoch<e>" (rows of 10 originals, then their reconstructions); at the end "reconstructions" (50 pairs).
Checkpoint config: "question": "q4a" + the VQVAEConfig fields, so `core.sources.build` rebuilds it.

q4b ("Token transformer") tokenizes the data set once with a tokenizer — "pretrained" (the shipped
`vqvae-<dataset>`), another shipped q4a name, or the id of a finished q4a run — caching the tokens in the run
folder, then trains the shared transformer on <bos> + 49 tokens (vocab = K + 1, <bos> = id K). Loss in nats
per token (an untrained model gives ≈ ln(K + 1); the course's reference is 3.083 on its coloured MNIST).
Samples never contain <bos> and are decoded to images by the same tokenizer.

Here: the two questions. Beside them: tokens.py (images <-> tokens, finding and loading a tokenizer) and
codebook_lab.py (the page's codebook lab); their names are re-exported here (q4.tokenize, q4.lab_curve, ...).
"""
from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from ... import memory, sources
from ...context import RunContext, epoch_name
from ...models.transformer import Transformer, forbid, sample
from ...models.vqvae import VQVAE, VQTokenizer, VQVAEConfig, vqvae_loss
from ...train import TrainConfig, fit, stop_check, subset, subset_indices
from ..base import Data, Field, Question, Trained, test_sample_field, transformer_check, transformer_fields
from .codebook_lab import (LAB_METHODS, bits_text, fixed_bits, lab_curve, lab_error, lab_tokenizer,  # noqa: F401
                           lab_usage, prior_bits, rd_caption, rd_figure, rd_title, token_picture, usage_bits)
from .tokens import (IMAGE_SHAPE, TOKENS, TokenCache, TokenizerMissing, available_tokenizers,  # noqa: F401
                     check_images, find_tokenizer, load_tokenizer, pairs, pretrained_tokenizer_name, to_images,
                     tokenize, tokenize_parts, tokenizer_config, tokenizer_source, with_bos)

DATASETS = ("mnist-colored", "mnist-v2")
N_FINAL = 100          # the deliverable: 100 samples as a 10x10 grid
PREVIEW = 20           # test images in each epoch's reconstruction preview


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
    test_sample_field(note=" (the codebook use before the last epoch is then counted on the sample too)"),
    Field("ema", True, label="EMA codebook",
          help="on: codes are moving averages of the encoder outputs they receive (decay 0.99); off: codes are "
               "learned by the codebook loss, as in the original"),
)
A_PRESETS = {  # the first is the default on a CPU, homework on a GPU
    # 136 s on the 2-core box, test MSE 0.110 (bench.system.first_minutes)
    "quick": {"model_size": "small", "epochs": 3, "lr": 2e-3, "data_fraction": 0.6, "test_sample": 1000},
    "homework": {},  # the original's shape: 128/256 channels, 1024 x 64 codes; 15 epochs on a GPU
}


class VQObjective:
    """fit's loss_fn: recon MSE + VQ loss. In training it emits a "vq" event per minibatch; in evaluation it
    tallies what fit scores (the whole test set, or its sample before the last epoch: squared error, wrong pixels,
    code counts), read by `flush`."""

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
    memory_fields = ("batch_size", "model_size", "batch size, codebook size, embedding dim or model size")
    architecture = ("model_size", "n_embeddings", "embedding_dim", "ema")
    # from a trained tokenizer: a tenth of the homework rate, one pass over 3% of the images (the full-size
    # tokenizer takes ~30 min an epoch on 2 CPU cores)
    finetune = {"epochs": 1, "lr": 1e-4, "data_fraction": 0.03, "test_sample": 500}
    model_label = "a tokenizer (q4a)"
    heading = "Question 4: Causal Transformer on Latent Space — (a) VQ-VAE reconstructions"
    quick_seconds = {None: 136}
    samples_artifact = "reconstructions"

    def rebuild(self, config):
        from dataclasses import fields

        from ...checkpoints import CheckpointError

        names = {f.name for f in fields(VQVAEConfig)}
        try:
            return VQVAE(VQVAEConfig(**{k: v for k, v in config.items() if k in names}))
        except TypeError as e:
            raise CheckpointError(f"not a VQ-VAE tokenizer config ({e})") from None

    def owns_config(self, config):
        return "n_embeddings" in config and "embedding_dim" in config   # the first tokenizers saved their VQVAEConfig alone

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ...train import evaluate

        def recon(m, x):
            x_hat = m(x)[0]
            return F.mse_loss(x_hat, x.float().to(x_hat.device))

        return evaluate(model, recon, torch.as_tensor(test), batch_size, device)

    def figure_names(self, dataset):
        return [f"{self.prefix(dataset)}_samples.png"]   # its reconstructions

    def sample_levels(self, dataset):
        return 4

    def checkpoint_samples(self, model, config, entry, seed, device):
        from ... import data

        tok = VQTokenizer(model)
        shown = data.load(entry["dataset"], version=entry.get("data_version"))[1][:50]  # the images it was trained on
        return pairs(shown, to_images(tok.decode(tok.quantize(shown))))

    def memory(self, hp, dataset):
        est = memory.vqvae(min(hp["batch_size"], memory.n_train(dataset, hp["data_fraction"])), tokenizer_config(hp))
        est.data = memory.images_bytes(dataset, 2)
        return est

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """Fit a tokenizer on image arrays; extras["history"]: test metrics per epoch (0 = before training)."""
        hp = self.hparams(hp)
        ctx = ctx or RunContext()
        train = subset(check_images(data.train, "training images"), hp["data_fraction"], seed)
        test = check_images(data.test, "test images")
        torch.manual_seed(seed)
        model = VQVAE(tokenizer_config(hp))
        objective = VQObjective(ctx, model.config.n_embeddings)
        preview = test[:PREVIEW]

        def on_epoch_end(epoch, m):
            objective.flush(epoch)
            if ctx.keeps:
                m.eval()
                with torch.no_grad():
                    rec = to_images(m(preview)[0].cpu())
                ctx.save_images(epoch_name("recon", epoch), pairs(preview, rec), ncols=10, levels=4, epoch=epoch)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"], schedule="cosine",
                          seed=seed, device=device, test_sample=hp["test_sample"])
        res = fit(model, objective, torch.as_tensor(train), torch.as_tensor(test), cfg, ctx, on_epoch_end)
        return Trained(model.eval(), {"question": self.key, **asdict(model.config)}, res,
                       {"history": objective.history})

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        model, res, history = trained.model, trained.result, trained.extras["history"]
        last = history[-1]
        with torch.no_grad():
            shown = data.test[:50]
            ctx.save_images("reconstructions", pairs(shown, to_images(model(shown)[0].cpu())), ncols=10,
                            levels=4, final=True)
        metrics = {"test_mse": last["recon"], "test_wrong": last["wrong"], "test_usage": last["usage"],
                   "test_perplexity": last["perplexity"], "n_embeddings": model.config.n_embeddings}
        return {"test_loss": last["recon"], "unit": "mse",
                "note": "for the tokenizer, test_loss is the reconstruction MSE in the 0..3 pixel scale, not nats",
                **metrics, "start_mse": history[0]["recon"], "seconds": res.seconds, "metrics": metrics}


# ----------------------------------------------------------------------------------------------- q4b: the transformer
TOKENIZER_FIELD = Field("tokenizer", "pretrained", help="\"pretrained\" = the tokenizer shipped for this data set; "
                                                      "or the id of a finished Tokenizer run (Q4 page)")
TEMPERATURE_FIELD = Field("temperature", 1.0, 0.0, 5.0, help="for every sample (0 = greedy)")
B_FIELDS = (
    TOKENIZER_FIELD,
    *transformer_fields(4, epochs=(30, 500), batch=(128, 4096), warmup=1000, lr_min=1e-6,
                        epochs_help="passes over the tokenized training images",
                        batch_help="sequences of <bos> + 49 tokens per minibatch"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction", help="share of the training images used"),
    test_sample_field(),
    Field("samples_per_epoch", 20, 0, 100, label="samples per epoch", help="images drawn after every epoch"),
    TEMPERATURE_FIELD,
)
B_PRESETS = {  # the first is the default on a CPU, homework on a GPU
    "quick": {"d_model": 64, "heads": 4, "layers": 2, "epochs": 4, "batch_size": 64, "lr": 2e-3,
              "warmup_steps": 100, "data_fraction": 0.5, "samples_per_epoch": 10, "test_sample": 1000},
    "homework": {},  # the notebook's: d_model 128, 4 heads, 4 layers, 30 epochs, lr 1e-3, warm-up + cosine
}


def token_model_check(q: Question, hp: dict, dataset: str) -> dict:
    """The cross-field checks of a transformer over a tokenizer's tokens (q4b, q6): heads divide d_model, and the
    tokenizer named exists for the data set."""
    errors = transformer_check(hp)
    if dataset in q.datasets:
        try:
            find_tokenizer(hp["tokenizer"], dataset)
        except TokenizerMissing as e:
            errors["tokenizer"] = str(e)
    return errors


def token_model_memory(hp: dict, dataset: str, tokens: int, vocab_extra: int) -> memory.Estimate:
    """The memory estimate of a transformer over the tokens of the tokenizer hp["tokenizer"] names (q4b, q6): sequences
    of `tokens` inputs, a vocabulary of K codes + `vocab_extra`; tokenizing the images first may take more."""
    try:
        K = int(sources.config(find_tokenizer(hp["tokenizer"], dataset).source)["n_embeddings"])
    except (ValueError, KeyError):   # no such tokenizer (check says so): the default codebook
        K = VQVAEConfig.n_embeddings
    batch = min(hp["batch_size"], memory.n_train(dataset, hp["data_fraction"]))
    est = memory.transformer(batch, tokens, hp["d_model"], hp["layers"], K + vocab_extra)
    est.activations = max(est.activations, memory.tokenizing(K))
    est.data = memory.images_bytes(dataset) + 16 * (tokens + 1) * sum(memory.counts(dataset))   # + their tokens
    return est


def transformer_config(hp: dict, n_embeddings: int) -> dict:
    """What a q4b checkpoint stores to rebuild its transformer (TransformerConfig's own field names)."""
    return {"question": "q4b", "n_embeddings": n_embeddings, "vocab_size": n_embeddings + 1, "bos": n_embeddings,
            "block_size": TOKENS + 1, "d_model": int(hp["d_model"]), "n_heads": int(hp["heads"]),
            "n_layers": int(hp["layers"])}


def load_transformer(source: str, device: str = "cpu", runs_root=None):
    """(Transformer, config) of a q4b source: "pretrained:NAME", "run:ID", a shipped name or a run id.
    config["tokenizer"] is the source of the tokenizer it was trained with (load it with load_tokenizer)."""
    return sources.load(source, device, runs_root, questions="q4b")


def sample_images(model: Transformer, vqvae, n: int, seed: int = 0, temperature: float = 1.0, step_callback=None):
    """n token grids from <bos> (never <bos> again), decoded -> (uint8 images (n,28,28,3), tokens (n,7,7));
    step_callback: the sampler's (e.g. a cancel check)."""
    bos = model.config.vocab_size - 1
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    toks = sample(model, n, TOKENS, prefix=[bos], generator=gen, temperature=temperature, logits_hook=forbid(bos),
                  step_callback=step_callback)[:, 1:].reshape(n, 7, 7).cpu().numpy()
    return to_images(vqvae.decode(toks)), toks


class TokenTransformerQ(Question):
    key, title = "q4b", "Transformer on VQ tokens"
    source_fields = ("tokenizer",)
    datasets = DATASETS
    fields = B_FIELDS
    presets = B_PRESETS
    unit = "nats/token"
    reference = {"mnist-colored": 3.083}  # the course's test loss on its coloured MNIST, with its tokenizer
    students = {"mnist-colored": (2.93, 3.74), "mnist-v2": (2.85, 3.77)}   # on the course's data (spec.md)
    memory_fields = ("batch_size", "d_model", "batch size, d_model or layers")
    architecture = ("tokenizer", "d_model", "heads", "layers")   # the tokens, and the transformer's shape
    # from a trained model: a tenth of the homework peak, a short warm-up, one pass over 10% of the images
    finetune = {"epochs": 1, "lr": 1e-4, "warmup_steps": 20, "data_fraction": 0.1, "samples_per_epoch": 4,
                "test_sample": 500}
    heading = "Question 4: Causal Transformer on Latent Space — (b) Transformer on VQ tokens"
    quick_seconds = {None: 120}

    def check(self, hp, dataset):
        return {**super().check(hp, dataset), **token_model_check(self, hp, dataset)}

    def memory(self, hp, dataset):
        return token_model_memory(hp, dataset, TOKENS, 1)

    def rebuild(self, config):
        return Transformer.from_config(config)

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ...train import evaluate

        tok = load_tokenizer(config["tokenizer"], device)
        tokens = tokenize(tok, test)
        return evaluate(model, lambda m, s: m.loss(s), with_bos(tokens, tok.n_embeddings), batch_size, device)

    def sample_levels(self, dataset):
        return 4

    def checkpoint_samples(self, model, config, entry, seed, device):
        imgs, _ = sample_images(model, load_tokenizer(config["tokenizer"], device), N_FINAL, seed)
        return imgs

    def load_data(self, dataset, hp, ctx) -> Data:
        """The images and the tokenizer that hp["tokenizer"] names."""
        data = super().load_data(dataset, hp, ctx)
        found = find_tokenizer(hp["tokenizer"], dataset, ctx.runs_root)
        data.tokenizer = load_tokenizer(found.source, ctx.device, runs_root=ctx.runs_root)
        data.source, data.sha256 = found.source, found.sha256
        ctx.emit("log", msg=f"tokenizer: {found.label} ({data.tokenizer.n_embeddings} codes)")
        return data

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """Tokenize with data.tokenizer (any object with n_embeddings, quantize, decode), then fit the
        transformer. Token arrays are cached in the run folder when the context has one."""
        hp = self.hparams(hp)
        ctx = ctx or RunContext()
        vqvae = data.tokenizer
        everything = check_images(data.train, "training images")
        keep = subset_indices(len(everything), hp["data_fraction"], seed)
        train = everything[keep]
        test = check_images(data.test, "test images")
        K = int(vqvae.n_embeddings)
        tokens = tokenize_parts(vqvae, {"train": (everything, keep), "test": test}, ctx, shipped_sha256=data.sha256)
        counts = np.bincount(tokens["train"].ravel(), minlength=K)
        info = {"n_embeddings": K, "vocab_size": K + 1, "ln_vocab": math.log(K + 1),
                "train_images": len(train), "codes_used_in_train": int((counts > 0).sum())}
        ctx.emit("meta", **info)

        torch.manual_seed(seed)
        config = {**transformer_config(hp, K), "dataset": data.name, "tokenizer": data.source,
                  "tokenizer_sha256": data.sha256}
        model = Transformer.from_config(config)

        def on_epoch_end(epoch, m):
            n = hp["samples_per_epoch"]
            if n and ctx.keeps:
                imgs, _ = sample_images(m, vqvae, n, seed + epoch, hp["temperature"],
                                        stop_check(ctx, f"drawing the epoch {epoch} previews"))
                ctx.save_images(epoch_name("samples", epoch), imgs, ncols=10, levels=4, epoch=epoch)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          warmup_steps=hp["warmup_steps"], schedule="cosine", seed=seed, device=device,
                          test_sample=hp["test_sample"])
        res = fit(model, lambda m, s: m.loss(s), with_bos(tokens["train"], K), with_bos(tokens["test"], K),
                  cfg, ctx, on_epoch_end)
        return Trained(model.eval(), config, res, info)

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        ctx.progress(0.0, f"drawing the {N_FINAL} final samples")
        imgs, toks = sample_images(trained.model, data.tokenizer, N_FINAL, spec.seed, hp["temperature"],
                                   stop_check(ctx, "drawing the final samples"))
        if ctx.path("sample_tokens.npy") is not None:
            np.save(ctx.path("sample_tokens.npy"), toks)
        ctx.save_images("samples", imgs, ncols=10, levels=4, final=True)
        info = trained.extras
        metrics = {"tokenizer": data.source, "start_loss": trained.result.test_losses[0], **info}
        return {**self.summary(trained), "tokenizer": data.source.replace(":", " ", 1), **info, "metrics": metrics}


TOKENIZER, TOKEN_TRANSFORMER = TokenizerQ(), TokenTransformerQ()
