"""Q3 — iGPT: a causal transformer on pixels (a: binary, b: colour), and the KV-cache race (c).

Tokens. A binary pixel is its value, 0 or 1, and <bos> is id 2 (vocabulary 3). A colour pixel (r, g, b), each
channel in {0..3}, is ONE token r*16 + g*4 + b in 0..63, and <bos> is id 64 (vocabulary 65). An image becomes the
sequence [<bos>, pixels in raster order], H*W + 1 tokens; the model's context (block_size) is H*W + 1, so that
sampling from [<bos>] can write all H*W pixels. Samples never contain <bos> (its logit is set to -inf).

Loss, in the course's unit: nats per pixel token. The model predicts one token per pixel, so its cross-entropy is
in nats per pixel. For binary images a pixel is one dimension (nats/dim, ln 2 for a uniform guess). For colour, a
pixel is one token of 64 values and the course reports nats per token (its Q3b train plot starts near ln 64 = 4.16;
its reference 0.0541 on coloured shapes is per token). The Q2b PixelCNN's unit is per sub-pixel (a 4-way softmax
per channel): divide a Q3b loss by 3 to set it beside a Q2b one (results carry it as "nats_per_subpixel").

Models are found by a source string through core.sources: "pretrained:NAME" (a checkpoint in
pretrained/manifest.json) or "run:ID" (a finished run's model.safetensors). A checkpoint's config holds the
TransformerConfig fields, the image shape and the colour flag; `Transformer.from_config` rebuilds the model.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np
import torch

from .. import data, memory, sources
from ..context import RunContext, epoch_name
from ..models import evaluating
from ..models.transformer import Transformer, forbid, sample
from ..train import RunCancelled, TrainConfig, fit, stop_check, subset
from .base import Data, Field, Question, Trained, test_sample_field, transformer_check, transformer_fields

IMAGE_SHAPES = {name: data.image_shape(name)  # (H, W, C), from core.data.SETS
                for name in ("shapes", "mnist", "shapes-colored", "mnist-colored")}
BINARY_SETS, COLOUR_SETS = ("shapes", "mnist"), ("shapes-colored", "mnist-colored")
# the checkpoints the lab ships (python -m core.pretrain NAME q3a|q3b DATASET); q3c races these by default
PRETRAINED = {"shapes": "q3a-shapes", "mnist": "q3a-mnist", "shapes-colored": "q3b-shapes-colored",
              "mnist-colored": "q3b-mnist-colored"}
N_FINAL = 100
CHUNK = 16  # the race emits its step times every CHUNK steps (or every 2 s)


# ----------------------------------------------------------------------------------------------- tokens
def vocab(channels: int) -> tuple[int, int]:
    """-> (vocabulary size, <bos> id): binary 3 and 2, colour 65 and 64."""
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 (binary) or 3 (colour) channels, got {channels}")
    return (3, 2) if channels == 1 else (65, 64)


def pixel_tokens(images) -> torch.Tensor:
    """uint8 images (N,H,W,C) -> pixel tokens (N, H*W) in raster order (no <bos>)."""
    x = torch.as_tensor(np.asarray(images)).long()
    if x.dim() != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images of shape (N,H,W,1|3), got {tuple(x.shape)}")
    levels = 2 if x.shape[-1] == 1 else 4
    if x.numel() and (x.min() < 0 or x.max() >= levels):
        raise ValueError(f"pixel values must lie in 0..{levels - 1} for {x.shape[-1]}-channel images")
    if x.shape[-1] == 3:
        x = x[..., 0:1] * 16 + x[..., 1:2] * 4 + x[..., 2:3]
    return x.reshape(x.shape[0], -1)


def encode(images) -> torch.Tensor:
    """uint8 images (N,H,W,C) -> sequences (N, H*W + 1) uint8: [<bos>, pixels in raster order]."""
    tok = pixel_tokens(images)
    bos = vocab(np.asarray(images).shape[-1])[1]
    return torch.cat([torch.full((tok.shape[0], 1), bos), tok], 1).to(torch.uint8)


def decode(pixel_toks, image_shape) -> np.ndarray:
    """Pixel tokens (N, H*W) (without <bos>) -> uint8 images (N,H,W,C)."""
    H, W, C = image_shape
    t = torch.as_tensor(pixel_toks).long().cpu().reshape(-1, H, W)
    if C == 1:
        return t.unsqueeze(-1).numpy().astype(np.uint8)
    return torch.stack([t // 16, t // 4 % 4, t % 4], -1).numpy().astype(np.uint8)


# ----------------------------------------------------------------------------------------------- models
def model_config(image_shape, hp: dict, question: str = "", dataset: str = "") -> dict:
    """What a checkpoint stores to rebuild its model: TransformerConfig fields + image shape + colour flag."""
    H, W, C = map(int, image_shape)
    v, bos = vocab(C)
    return {"question": question, "dataset": dataset, "image_shape": [H, W, C], "colour": C == 3, "bos": bos,
            "vocab_size": v, "block_size": H * W + 1, "d_model": int(hp["d_model"]), "n_heads": int(hp["heads"]),
            "n_layers": int(hp["layers"])}


def compatibility(config: dict, image_shape) -> list[str]:
    """Why a checkpoint cannot model images of `image_shape` (H,W,C); empty if it can."""
    H, W, C = image_shape
    v, _ = vocab(C)
    kind = "binary pixels + <bos>" if C == 1 else "64 colours + <bos>"
    problems = []
    if int(config.get("vocab_size", -1)) != v:
        problems.append(f"the checkpoint's vocabulary has {config.get('vocab_size')} tokens, but {H}x{W}x{C} "
                        f"images need {v} ({kind}): it was trained on another kind of data")
    if int(config.get("block_size", 0)) < H * W + 1:
        problems.append(f"the checkpoint's context ({config.get('block_size')} tokens) is shorter than an image "
                        f"of {H}x{W} = {H * W} pixels + <bos>")
    elif list(config.get("image_shape", [H, W, C]))[:2] != [H, W]:
        problems.append(f"the checkpoint was trained on {config['image_shape'][0]}x{config['image_shape'][1]} "
                        f"images, not {H}x{W}")
    return problems


# ----------------------------------------------------------------------------------------------- sampling
def _generator(model, seed: int):
    return torch.Generator(device=next(model.parameters()).device).manual_seed(int(seed))


def generate(model, config: dict, n: int, seed: int = 0, use_cache: bool = True, temperature: float = 1.0,
             step_callback=None, return_times: bool = False):
    """n unconditional samples -> uint8 images (n,H,W,C) (and the seconds of every step, with return_times)."""
    H, W, C = config["image_shape"]
    out = sample(model, n, H * W, prefix=[config["bos"]], use_cache=use_cache, generator=_generator(model, seed),
                 temperature=temperature, logits_hook=forbid(config["bos"]), step_callback=step_callback,
                 return_times=return_times)
    toks, times = out if return_times else (out, None)
    images = decode(toks[:, 1:], (H, W, C))
    return (images, times) if return_times else images


def complete(model, config: dict, images, keep_rows: int | None = None, seed: int = 0,
             step_callback=None) -> np.ndarray:
    """Keep the top `keep_rows` rows (default: half) of each image and sample the rest -> (N,H,W,C) uint8.
    step_callback(step, tokens, seconds): after every pixel drawn (the sampler's; a progress bar)."""
    images = np.asarray(images)
    H, W, C = config["image_shape"]
    if images.shape[1:] != (H, W, C):
        raise ValueError(f"the model draws {H}x{W}x{C} images, got {images.shape[1:]}")
    keep = H // 2 if keep_rows is None else int(keep_rows)
    if not 0 <= keep < H:
        raise ValueError(f"keep_rows must be in 0..{H - 1}")
    prefix = encode(images).long()[:, : 1 + keep * W]  # <bos> + the kept rows
    toks = sample(model, len(images), (H - keep) * W, prefix=prefix.to(next(model.parameters()).device),
                  generator=_generator(model, seed), logits_hook=forbid(config["bos"]), step_callback=step_callback)
    return decode(toks[:, 1:], (H, W, C))


def stepper(model, config: dict):
    """Drawing an image one pixel at a time with the sampler's own probabilities (the page's step-by-step view):
    a core.nexttoken.Stepper from <bos>, <bos> never drawn."""
    from ..nexttoken import Stepper

    return Stepper(model, [config["bos"]], logits_hook=forbid(config["bos"]))


@torch.no_grad()
def attention_maps(model, config: dict, image, pixel: int) -> dict:
    """Where the position that predicts pixel `pixel` (raster index) looks, in every layer and head.

    The input is [<bos>, x_0, ..., x_{pixel-1}]; the last position predicts x_pixel. Returns
    maps (L, h, H, W): its attention weight on every earlier pixel (NaN at `pixel` and after),
    bos (L, h): the weight left on <bos>, and probs (V,): p(x_pixel | earlier pixels) (<bos> excluded).
    """
    H, W, C = config["image_shape"]
    if not 0 <= pixel < H * W:
        raise ValueError(f"pixel must be in 0..{H * W - 1}")
    seq = encode(np.asarray(image)[None]).long()[:, : pixel + 1].to(next(model.parameters()).device)
    with evaluating(model):
        logits, atts = model(seq, return_attn=True)
    w = torch.stack([a[0, :, -1] for a in atts]).float().cpu()  # (L, h, pixel + 1): <bos>, x_0 .. x_{pixel-1}
    maps = torch.full((*w.shape[:2], H * W), float("nan"))
    maps[..., :pixel] = w[..., 1:]
    probs = forbid(config["bos"])(0, None, logits[:, -1]).softmax(-1)[0, : config["bos"]]
    return {"maps": maps.reshape(*w.shape[:2], H, W).numpy(), "bos": w[..., 0].numpy(), "probs": probs.cpu().numpy()}


def race(model, config: dict, n: int, seed: int = 0, callback=None) -> dict:
    """The Q3c race: n samples without the KV cache (every step re-runs the whole prefix), then with it, from the
    same seed (same random numbers), so both should draw the same images.

    callback(sampler, step, seconds) after every step; sampler is "uncached" or "cached".
    -> {times_uncached, times_cached: seconds of each of the H*W steps, samples_uncached, samples_cached:
        (n,H,W,C) uint8, identical: how many of the n samples match exactly}.
    """
    out = {}
    for name, use_cache in (("uncached", False), ("cached", True)):
        cb = None if callback is None else (lambda s, tok, sec, name=name: callback(name, s, sec))
        out[f"samples_{name}"], out[f"times_{name}"] = generate(model, config, n, seed, use_cache,
                                                                step_callback=cb, return_times=True)
    same = (out["samples_uncached"] == out["samples_cached"]).reshape(n, -1).all(1)
    out["identical"] = int(same.sum())
    return out


@contextmanager
def full_float32():
    """Cached and uncached logits must agree to float32 precision for the race to draw the same samples:
    TF32 matmuls (switched on in CUDA workers) would make them differ by ~1e-3. Restores the setting after."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ----------------------------------------------------------------------------------------------- Q3a / Q3b
FIELDS = (
    *transformer_fields(2, epochs=(15, 200), batch=(64, 1024), warmup=1000,
                        epochs_help="passes over the (kept) training images", batch_help="images per minibatch"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction",
          help="share of the training images used (a seeded random subset); the final test loss is always of the "
               "whole test set"),
    test_sample_field(),
    Field("grad_clip", 1.0, 0.0, 100.0, label="gradient clip", help="largest gradient norm; 0 = off"),
    Field("preview_samples", 16, 0, 100, label="samples per epoch",
          help="images drawn (with the KV cache) after every epoch"),
)
PRESETS = {  # the first preset is the default on a CPU
    # measured on the 2-core box (bench.system.first_minutes, 30% of the images): shapes 1.01 -> 0.085 nats/dim in
    # 118 s, coloured shapes 4.17 -> 0.119 nats/token in 108 s (half the images: 0.076 and 0.107, 312 s on a slow day);
    # on MNIST this preset would take 15+ minutes: use quick-mnist
    "quick": {"d_model": 64, "heads": 4, "layers": 2, "epochs": 3, "batch_size": 32, "lr": 3e-3,
              "warmup_steps": 50, "data_fraction": 0.3, "preview_samples": 9, "test_sample": 1000},
    # the same model, one pass over 20% of MNIST (12,000 images, 375 steps): binary MNIST 1.06 -> 0.124 in 3-4.5
    # minutes when it scored all 10,000 test images before and after (over half the time); it now scores a 1,000-image
    # sample before training (not re-measured)
    "quick-mnist": {"d_model": 64, "heads": 4, "layers": 2, "epochs": 1, "batch_size": 32, "lr": 3e-3,
                    "warmup_steps": 50, "data_fraction": 0.2, "preview_samples": 9, "test_sample": 1000},
    # the notebook's settings: d_model 128, 4 heads, 2 layers, batch 64, lr 1e-3, 1000 warm-up + cosine, 15 epochs
    "homework": {},
}


def pixel_loss(model, seq):
    """Loss in nats per pixel token on sequences (B, H*W+1) (see the docstring)."""
    return model.loss(seq.long())


class IGPT(Question):
    fields = FIELDS
    presets = PRESETS
    splits_new_images = True
    memory_fields = ("batch_size", "d_model", "batch size, d_model or layers")
    architecture = ("d_model", "heads", "layers")
    # from a trained model: a tenth of the homework peak, a short warm-up, one pass over 5% of the images (on
    # MNIST, scoring the 10,000 test images before and after takes longer than the pass itself)
    finetune = {"epochs": 1, "lr": 1e-4, "warmup_steps": 10, "data_fraction": 0.05, "preview_samples": 4,
                "test_sample": 500}

    def check(self, hp, dataset):
        return {**super().check(hp, dataset), **transformer_check(hp)}

    def memory(self, hp, dataset):
        H, W, C = IMAGE_SHAPES[dataset]
        batch = min(hp["batch_size"], memory.n_train(dataset, hp["data_fraction"]))
        est = memory.transformer(batch, H * W, hp["d_model"], hp["layers"], vocab(C)[0])
        est.data = memory.images_bytes(dataset, 2)      # the images and their token sequences
        return est

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """Fit on uint8 images (N,H,W,C). When the context keeps artifacts, it draws `preview_samples` images with
        the KV cache after every epoch (artifact `samples_epochN`)."""
        hp = self.hparams(hp)
        errors = transformer_check(hp)
        if errors:
            raise ValueError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        ctx = ctx or RunContext()
        train, test = np.asarray(data.train), np.asarray(data.test)
        if train.shape[1:] != test.shape[1:]:
            raise ValueError(f"train and test images differ in shape: {train.shape[1:]} vs {test.shape[1:]}")
        shape = train.shape[1:]
        train = subset(train, hp["data_fraction"], seed)
        train_seq, test_seq = encode(train), encode(test)
        config = model_config(shape, hp, self.key, data.name)
        ctx.emit("meta", image_shape=list(shape), vocab_size=config["vocab_size"], n_train=len(train),
                 tokens_per_image=shape[0] * shape[1], ln_vocab=math.log(config["vocab_size"] - 1), unit=self.unit)
        torch.manual_seed(seed)
        model = Transformer.from_config(config)
        levels = 2 if shape[2] == 1 else 4

        def on_epoch_end(epoch, m):
            k = hp["preview_samples"]
            if k and ctx.keeps:
                imgs = generate(m, config, k, seed=seed + epoch,
                                step_callback=stop_check(ctx, f"drawing the epoch {epoch} previews"))
                ctx.save_images(epoch_name("samples", epoch), imgs, ncols=math.ceil(math.sqrt(k)), levels=levels,
                                epoch=epoch)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          warmup_steps=hp["warmup_steps"], schedule="cosine", grad_clip=hp["grad_clip"] or None,
                          seed=seed, device=device, test_sample=hp["test_sample"])
        res = fit(model, pixel_loss, train_seq, test_seq, cfg, ctx, on_epoch_end)
        return Trained(model.eval(), config, res, {"n_train_images": len(train)})

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        model, config, shape = trained.model, trained.config, data.train.shape
        ctx.progress(0.0, f"drawing the {N_FINAL} final samples")
        t0 = time.time()
        samples = generate(model, config, N_FINAL, seed=spec.seed,
                           step_callback=stop_check(ctx, "drawing the final samples"))
        ctx.save_images("samples", samples, ncols=10, levels=4 if config["colour"] else 2,
                        epoch=hp["epochs"], final=True)
        out = self.summary(trained)
        return {**out, "nats_per_subpixel": out["test_loss"] / shape[-1], "sample_seconds": time.time() - t0,
                "n_train_images": trained.extras["n_train_images"], "tokens_per_image": shape[1] * shape[2]}

    def rebuild(self, config):
        return Transformer.from_config(config)

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ..train import evaluate

        return evaluate(model, pixel_loss, encode(test), batch_size, device)

    def checkpoint_samples(self, model, config, entry, seed, device):
        return generate(model, config, N_FINAL, seed=seed)


class BinaryQ(IGPT):
    key, title = "q3a", "iGPT · binary"
    heading = "Question 3: Causal Transformer — (a) iGPT on Shapes and MNIST"
    quick_seconds = {"shapes": 118}
    datasets = BINARY_SETS
    reference = {"shapes": 0.0397}   # the course's final test loss (nats/dim = nats per pixel token)
    students = {"shapes": (0.032, 0.041), "mnist": (0.0719, 0.085)}   # what students reached (spec.md)


class ColourQ(IGPT):
    key, title = "q3b", "iGPT · colour"
    heading = "Question 3: Causal Transformer — (b) iGPT on Colored Shapes and MNIST"
    quick_seconds = {"shapes-colored": 108}
    datasets = COLOUR_SETS
    unit = "nats/token"              # per pixel token of 64 values, as the course reports Q3b
    reference = {"shapes-colored": 0.0541}
    students = {"shapes-colored": (0.050, 0.066), "mnist-colored": (0.087, 0.205)}


# ----------------------------------------------------------------------------------------------- Q3c: the race
RACE_BUTTON = "Race: without cache vs with cache"
RACE_TEXT = (
    "Draw the same images twice from the same seed, and time every step. With d = d_model, L layers and t tokens "
    "so far:\n"
    "- **Without** the cache, step t runs the model on the whole prefix: every layer recomputes all t positions, "
    "O(t·d²) for the projections and the MLP and O(t²·d) for attention, so a step costs "
    "**O(L(t·d² + t²·d))**.\n"
    "- **With** the cache, step t computes Q, K, V and the MLP for the new token only, O(d²), and attends over the t "
    "stored keys and values, O(t·d): **O(L(d² + t·d))** per step. Its line rises too, only far more slowly.\n\n"
    "Same random numbers, so the two grids must be identical. The speed-up is the uncached total over the cached "
    "total. Summed over the T = H·W steps (784 on MNIST) the operations' ratio lies between T/2 and 2T/3, so it "
    "grows with the image. A bigger batch can raise the measured ratio too, but that is overhead, not the "
    "algorithm: every step has fixed costs (launching each operation, Python), and shared by more images they "
    "weigh less on the cheap cached step.")
RACE_EMPTY = f"No race yet on this set: press **{RACE_BUTTON}** above to draw the samples both ways and time them."


def log_scale_label(speedup: float | None = None) -> str:
    """The race chart's log-axis checkbox, with the ratio measured by the race shown (none while it runs)."""
    if speedup:
        return (f"log scale (the cached total is {speedup:.1f}x smaller: on a linear axis its line lies near the "
                "floor)")
    return "log scale (on a linear axis the cached line lies near the floor)"


def log_ticks(values) -> tuple[list[float], list[str]]:
    """Ticks for a log axis over the positive `values`, each labelled with its full value ("0.5", "20", "1000"):
    1, 2, 5 per decade over up to 3 decades, else one per decade."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return [], []
    e0, e1 = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    mantissas = (1, 2, 5) if e1 - e0 <= 3 else (1,)
    vals = [float(f"{m}e{e}") for e in range(e0, e1 + 1) for m in mantissas if float(f"{m}e{e}") <= 10.0 ** e1]
    return vals, [np.format_float_positional(x, trim="-") for x in vals]


def race_figure(times: dict, steps: int, log_y: bool = True):
    """The race chart: ms per step of each sampler ({"uncached": [s, ...], "cached": [...]}), its total in the
    legend, on a log axis (full-value ticks) or a linear one."""
    import plotly.graph_objects as go

    from .. import viz

    fig, shown = go.Figure(), []
    for name, color in (("uncached", viz.PALETTE[3]), ("cached", viz.PALETTE[2])):
        if len(times.get(name, ())):
            x, y = viz.downsample(np.arange(1, len(times[name]) + 1), 1e3 * np.asarray(times[name], float), 800)
            shown.append(y)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{name} ({sum(times[name]):.2f} s)",
                                     line=dict(color=color)))
    yaxis = dict(title="ms per step", type="log" if log_y else "linear")
    if log_y and shown:
        yaxis["tickvals"], yaxis["ticktext"] = log_ticks(np.concatenate(shown))
    fig.update_layout(xaxis_title="step (pixel position)", yaxis=yaxis, height=340, xaxis_range=[0, steps],
                      margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def race_threads(device: str) -> int | None:
    """On a CPU, a race that holds every core is timed while the page and the browser that draw it take turns on
    the same cores: its steps stall whenever they redraw (2 cores, browser alongside: 45 s uncached and 2.1 s cached
    for 8 coloured MNIST images, against 27 s and 0.6 s alone). So the race leaves one core to them. Returns the
    torch threads the race uses (None on a GPU)."""
    if device != "cpu":
        return None
    from ..device import cpu_count

    threads = torch.get_num_threads()
    if threads > 1 and threads >= cpu_count():
        threads -= 1
        torch.set_num_threads(threads)
    return threads


class RaceQ(Question):
    """Sampling only: needs a checkpoint, no training data."""
    key, title = "q3c", "KV-cache race"
    heading = "Question 3: Causal Transformer — (c) K, V Caching for Improved Inference"
    course_datasets = COLOUR_SETS    # the write-up races on the coloured sets
    has_test_loss, measures = False, "Sampling time"
    kept_file = "timings.json"       # a race keeps timings, not a model
    source_fields = ("checkpoint",)
    datasets = COLOUR_SETS + BINARY_SETS
    fields = (
        Field("checkpoint", "", label="model", optional=True,
              help="'pretrained:NAME' or 'run:RUN_ID'; empty = the checkpoint shipped for the data set"),
        Field("n_samples", 100, 1, 100, label="samples", help="images drawn by each sampler (one batch)"),
    )
    # uncached, 100 coloured MNIST images take 10+ minutes on 2 CPU cores; 8 took 27 s (cached: 0.6 s) with both
    # cores, 43-50 s (cached 0.8 s) on the one core a race leaves itself on a 2-core machine (race_threads)
    presets = {"quick": {"n_samples": 8}, "homework": {}}

    @staticmethod
    def source(hp, dataset) -> str:
        return hp.get("checkpoint") or f"pretrained:{PRETRAINED[dataset]}"

    def check(self, hp, dataset, runs_root=None):
        src = self.source(hp, dataset)
        try:
            config = sources.config(src, runs_root)
        except ValueError as e:  # CheckpointError is a ValueError
            if not hp.get("checkpoint"):
                return {"checkpoint": f"no checkpoint is shipped for {dataset} yet: train a model on it first "
                                      f"and pick that run"}
            return {"checkpoint": str(e)}
        problems = compatibility(config, IMAGE_SHAPES[dataset])
        return {"checkpoint": "; ".join(problems)} if problems else {}

    def load_data(self, dataset, hp, ctx) -> Data:
        return Data(None, None, name=dataset)  # the race draws samples: no training data

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """The race trains nothing: its model comes from the source in hp["checkpoint"] (or the one shipped for
        the data set), loaded on `device`."""
        hp, ctx = self.hparams(hp), ctx or RunContext()
        src = self.source(hp, data.name)
        model, config = sources.load(src, device, ctx.runs_root)
        return Trained(model, config, None, {"source": src})

    def run(self, spec, ctx) -> dict:
        hp = self.hparams(spec.hparams)
        trained = self.train(self.load_data(spec.dataset, hp, ctx), hp, seed=spec.seed, device=ctx.device, ctx=ctx)
        model, config, src = trained.model, trained.config, trained.extras["source"]
        H, W, C = config["image_shape"]
        n, steps, chunk = hp["n_samples"], H * W, CHUNK
        from ..device import cpu_count

        before = torch.get_num_threads()  # the worker may run in-process (tests): hand the threads back after
        threads = race_threads(ctx.device)

        ctx.emit("race_start", source=src, n=n, steps=steps, image_shape=[H, W, C], device=ctx.device,
                 threads=threads, cores=cpu_count())
        buf, last = {"uncached": [], "cached": []}, [time.time()]

        def flush(name, step):
            b = buf[name]
            if b:
                ctx.emit("race_times", sampler=name, start=step + 1 - len(b), times=list(b))
                b.clear()
            last[0] = time.time()

        def callback(name, step, seconds):
            if ctx.cancelled():
                raise RunCancelled(f"cancelled at step {step} of the {name} sampler")
            buf[name].append(seconds)
            if len(buf[name]) >= chunk or step == steps - 1 or time.time() - last[0] > 2.0:
                flush(name, step)
                done = step + 1 + (steps if name == "cached" else 0)
                ctx.progress(done / (2 * steps), f"step {done} of {2 * steps} in all ({name} sampler: step "
                                                 f"{step + 1} of {steps})")

        try:
            with full_float32():
                out = race(model, config, n, spec.seed, callback)
        finally:
            torch.set_num_threads(before)
        levels = 4 if config["colour"] else 2
        ctx.save_images("no_cache", out["samples_uncached"], ncols=min(10, n), levels=levels)
        ctx.save_images("with_cache", out["samples_cached"], ncols=min(10, n), levels=levels)
        ctx.save_json("timings", {"uncached": out["times_uncached"], "cached": out["times_cached"]})
        tu, tc = sum(out["times_uncached"]), sum(out["times_cached"])
        return {"seconds_uncached": tu, "seconds_cached": tc, "speedup": tu / tc, "identical": out["identical"],
                "n_samples": n, "steps": steps, "source": src}

    # -- the write-up: the timing plot and both samplers' images; its number is the sampling time
    def figure_names(self, dataset):
        n = self.dset_number(dataset)
        return [f"q3_c_dset{n}_timing_plot.png", f"q3_c_no_cache_dset{n}_samples.png",
                f"q3_c_with_cache_dset{n}_samples.png"]

    def run_figures(self, run):
        import json

        from .. import figures

        names, n = self.figure_names(run.dataset), self.dset_number(run.dataset)
        path = run.dir / "timings.json"
        t = json.loads(path.read_text()) if path.exists() else None
        out = {}
        if t:
            run.extra.update({"seconds_uncached": sum(t["uncached"]), "seconds_cached": sum(t["cached"]),
                              "speedup": sum(t["uncached"]) / max(sum(t["cached"]), 1e-12)})
            out[names[0]] = figures.Figure(lambda p: figures.timing_plot(p, t["uncached"], t["cached"],
                                                                         f"Q3(c) Dataset {n} Timing Plot"))
        else:
            out[names[0]] = "the race has no timings (not finished)"
        for name, art in zip(names[1:], ("no_cache", "with_cache")):
            out[name] = figures.Figure(lambda p, name=name, art=art: figures.samples_figure(
                p, np.load(run.dir / f"{art}.npy"), name[:-4].replace("_", " "), levels=figures.levels(run.dataset)),
                "no samples saved")
        return out

    def loss_text(self, item):
        s = item.extra
        return (f"{s['seconds_uncached']:.2f} s without the cache, {s['seconds_cached']:.2f} s with it "
                f"({s['speedup']:.1f}x)") if s else "**not measured yet**"


BINARY, COLOUR, RACE = BinaryQ(), ColourQ(), RaceQ()
