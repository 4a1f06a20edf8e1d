"""Q2 — PixelCNN: (a) binary shapes and MNIST, (b) colour images with channels independent given earlier pixels.

    q2a: 7x7 type-A conv, `layers` 7x7 type-B convs, two 1x1 type-B convs, ReLU, 64 filters, 2-way softmax.
    q2b: 7x7 type-A conv, `blocks` residual blocks (1x1, 7x7 type B, 1x1), layer norm over channels, 120 filters,
         a 4-way softmax per colour channel.
Both train through core.train.fit on a (seeded) subset of the training images; the final test loss is always on
the whole test set (the points before it on a sample of it when `test_sample` says so). After every epoch a preview grid of 25 samples (fast sampler); at the end 100 samples (10x10).

Data: uint8 images (N, H, W, C): {0,1} for shapes/mnist, {0..3} for the coloured sets.
`subset`: <= 1 is a share of the training images, > 1 a number of images.
A checkpoint's config holds the net's arguments and the image shape: `core.sources.build(config)` rebuilds it.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import data, memory
from ..context import RunContext, epoch_name
from ..models.pixelcnn import PixelCNN, loss, mask_array, receptive_field, sample  # noqa: F401 (mask_array: pages)
from ..train import TrainConfig, fit, stop_check, subset_indices
from .base import Data, Field, InvalidHyperparameters, Question, Trained, test_sample_field

# data set -> ((H, W, C), training images), from core.data.SETS (a test checks them against the loaded arrays)
IMAGES = {name: (data.image_shape(name), data.SETS[name]["counts"][0])
          for name in ("shapes", "mnist", "shapes-colored", "mnist-colored")}
N_PREVIEW, N_FINAL = 25, 100       # samples after every epoch (5x5) and at the end (10x10)
PRETRAINED = {"shapes": "q2a-shapes", "mnist": "q2a-mnist", "shapes-colored": "q2b-shapes-colored",
              "mnist-colored": "q2b-mnist-colored"}      # names in pretrained/manifest.json


def _fields(filters: int, depth: Field, extra: tuple = ()) -> tuple:
    return (
        Field("filters", filters, 2 if depth.name == "blocks" else 1, 512, help="channels of every hidden layer"),
        depth,
        Field("kernel_size", 7, 1, 31, label="kernel size", help="size k of the masked k x k convolutions; odd"),
        *extra,
        Field("fast", True, label="fast masked conv",
              help="crop each kernel to the rows that can be non-zero (same function, about half the work); "
                   "off = the plain reference, full kernel times mask"),
        Field("epochs", 10, 1, 500),
        Field("batch_size", 128, 1, 8192, label="batch size"),
        Field("lr", 1e-3, 1e-5, 1.0, label="learning rate", help="Adam"),
        Field("subset", 1.0, 0.001, 60000.0, label="training subset",
              help="up to 1: the share of the training images used; above 1: that many images "
                   "(a seeded random subset; the final test loss always uses the whole test set)"),
        test_sample_field(),
    )


def n_used(subset: float, n: int) -> int:
    """Training images a `subset` value keeps out of n."""
    return len(subset_indices(n, subset, 0))


def problems(hp: dict, shape, n: int, name: str = "this data set") -> dict[str, str]:
    """{field: message} for settings that cannot work on n training images of `shape` (H, W, C)."""
    errors, (H, W) = {}, shape[:2]
    k = hp["kernel_size"]
    if k % 2 == 0:
        errors["kernel_size"] = f"must be odd (got {k}): a masked kernel needs a centre pixel"
    elif k > min(H, W):
        errors["kernel_size"] = f"{k} is larger than the {H}x{W} images of {name}"
    s = hp["subset"]
    if s > 1 and s != int(s):
        errors["subset"] = f"above 1 it is a number of images and must be whole (got {s:g})"
    elif s > n:
        errors["subset"] = f"{int(s)} images asked for, but {name} has only {n} training images"
    elif hp["batch_size"] > n_used(s, n):
        errors["batch_size"] = (f"{hp['batch_size']} is larger than the {n_used(s, n)} training images used "
                                f"(lower it or raise the training subset)")
    return errors


def as_images(x, channels: int | None = None) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) ints -> uint8 (N, H, W, C)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or (channels and x.shape[-1] != channels):
        raise ValueError(f"expected images (N, H, W{', ' + str(channels) if channels else ', C'}), got {x.shape}")
    return x.astype(np.uint8)


# ---------------------------------------------------------------------------------------------- sampling
def draw(model: PixelCNN, n: int, shape, seed: int = 0, prefix=None, on_row=None, fast: bool = True) -> np.ndarray:
    """n samples (n, H, W, C) uint8, seeded; prefix (n, R, W, C) = known top rows; on_row(r, images so far)."""
    H, W = shape[:2]
    gen = torch.Generator().manual_seed(seed)

    def on_pixel(r, c, x):
        if c == W - 1:
            on_row(r, x.cpu().numpy().astype(np.uint8))

    x = sample(model, n, (H, W), gen, on_pixel=on_pixel if on_row else None, prefix=prefix, fast=fast)
    return x.cpu().numpy().astype(np.uint8)


def complete(model: PixelCNN, images, k: int = 4, seed: int = 0, rows: int | None = None, on_row=None):
    """Keep the top `rows` (default: half) of each image and draw the rest k times -> (n, k, H, W, C) uint8."""
    images = as_images(images)
    n, H = len(images), images.shape[1]
    rows = H // 2 if rows is None else rows
    prefix = torch.as_tensor(images[:, :rows]).repeat_interleave(k, 0)    # (n*k, rows, W, C)
    out = draw(model, n * k, images.shape[1:], seed, prefix=prefix, on_row=on_row)
    return out.reshape(n, k, *images.shape[1:])


def receptive_map(layers: int, kernel_size: int, H: int, W: int, row: int, col: int) -> np.ndarray:
    """(H, W) ints for the mask lesson: 0 later pixel (must not be seen), 1 seen, 2 the blind spot (earlier, and
    never seen however deep the stack: j rows up, right of col + j*(k//2); see blind_spot), 3 the pixel itself,
    4 earlier but beyond this depth's reach (more layers would see it). Seen is measured on a q2a-shaped net with
    random weights (`layers` type-B layers after the type-A one); the split of the rest follows the masks."""
    cfg = dict(in_channels=1, n_values=2, filters=8, n_layers=layers, kernel_size=kernel_size)
    seen = receptive_field(cfg, row, col, H, W)
    earlier = (np.arange(H * W) < row * W + col).reshape(H, W)
    out = np.where(seen, 1, np.where(blind_spot(kernel_size, H, W, row, col), 2, np.where(earlier, 4, 0)))
    out[row, col] = 3
    return out


def blind_spot(kernel_size: int, H: int, W: int, row: int, col: int) -> np.ndarray:
    """(H, W) bool: the earlier pixels no stack of kxk type A/B layers ever sees from (row, col). A mask covers
    the rows above its centre in full, but within the centre row it reaches only left: a layer can move the
    field right (by k//2 at most) only while it also climbs a row or more, so j rows up the field ends at column
    col + j*(k//2)."""
    r, c = np.ogrid[:H, :W]
    return (r < row) & (c > col + (row - r) * (kernel_size // 2))


BLIND_SPOT = (
    "**Which pixels reach the prediction of one pixel?** Stack the layers and follow the masks. A type A or B mask "
    "covers the rows above its centre in full, right side included; only within the centre row does it reach left "
    "alone. So a layer moves the field right, by at most k//2 columns, only where it also climbs at least one row: "
    "j rows above the pixel (row r, column c), nothing right of column c + j·(k//2) is ever seen, however deep the "
    "stack. That wedge of earlier pixels up and to the right is the **blind spot** of the plain PixelCNN (the gated "
    "PixelCNN removes it with a vertical and a horizontal stack). Measured here from the gradients of a net with "
    "random weights.")


def field_text(layers: int, kernel_size: int, row: int, col: int, out_of_reach: bool = True) -> str:
    """The receptive-field map's rule in the numbers of its settings (`layers` type-B layers after the type-A one,
    kxk kernels, the pixel at (row, col)): what receptive_map measures and blind_spot says. out_of_reach: whether
    the map shows earlier pixels this depth does not reach yet (value 4)."""
    n, h = layers + 1, kernel_size // 2
    reach = n * h
    return (f"{n} masked {kernel_size}×{kernel_size} layers (1 type A + {layers} type B), k//2 = {h}: in row "
            f"{row} the net sees the columns left of {col}; in row {row} − j, for j = 1 to {reach}, columns "
            f"{col} − {reach} to {col} + {h}·min(j, {n}) (within the image). Right of {col} + {h}·j lies the "
            "blind spot (orange)" + (f"; the other earlier pixels are only out of reach of {n} layers (light "
                                     "orange): more layers would see them." if out_of_reach else "."))


# ---------------------------------------------------------------------------------------------- the question
class PixelCNNQ(Question):
    n_values, residual, depth = 2, False, "layers"
    unit = "nats/dim"
    splits_new_images = True

    def check(self, hp, dataset):
        shape, n = IMAGES[dataset]
        return {**super().check(hp, dataset), **problems(hp, shape, n, dataset)}

    def train_examples(self, hp, dataset):
        s, n = hp["subset"], IMAGES[dataset][1]
        return min(n, max(1, round(s * n)) if s <= 1 else int(s))   # subset_indices' count, without drawing them

    def memory(self, hp, dataset):
        shape, n = IMAGES[dataset]
        est = memory.pixelcnn(min(hp["batch_size"], n_used(hp["subset"], n)), shape, self.n_values, hp["filters"],
                              hp[self.depth], hp["kernel_size"], self.residual, hp.get("layer_norm", False))
        est.data = memory.images_bytes(dataset, 2)      # the images and the training subset as a tensor
        return est

    def build(self, shape, hp) -> PixelCNN:
        return PixelCNN(in_channels=shape[2], n_values=self.n_values, filters=hp["filters"],
                        n_layers=hp[self.depth], kernel_size=hp["kernel_size"], residual=self.residual,
                        layer_norm=hp.get("layer_norm", False), fast=hp["fast"], image_shape=shape[:2])

    def rebuild(self, config):
        keys = ("in_channels", "n_values", "filters", "n_layers", "kernel_size", "residual", "layer_norm")
        return PixelCNN(**{k: config[k] for k in keys}, fast=True, image_shape=tuple(config["image_shape"][:2]))

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ..train import evaluate

        return evaluate(model, loss, torch.as_tensor(test), batch_size, device)

    def checkpoint_samples(self, model, config, entry, seed, device):
        return self.final_samples(model, data.image_shape(entry["dataset"]), seed)

    def config(self, model: PixelCNN, shape) -> dict:
        return {"question": self.key, "image_shape": list(shape), **model.config}

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """Fit on uint8 images; when the context keeps artifacts, a grid of 25 samples after every epoch."""
        hp = self.hparams(hp)
        ctx = ctx or RunContext()
        C = 1 if self.n_values == 2 else 3
        train, test = as_images(data.train, C), as_images(data.test, C)
        for x in (train, test):
            if x.max(initial=0) >= self.n_values:
                raise ValueError(f"{self.key} expects values in 0..{self.n_values - 1}, got up to {x.max()}")
        shape = train.shape[1:]
        errors = problems(hp, shape, len(train))
        if errors:
            raise InvalidHyperparameters(errors)
        idx = subset_indices(len(train), hp["subset"], seed)
        ctx.emit("meta", image_shape=list(shape), n_values=self.n_values, n_train=len(idx), n_test=len(test))
        torch.manual_seed(seed)
        model = self.build(shape, hp)

        def on_epoch_end(epoch, m):
            if ctx.keeps:
                imgs = draw(m, N_PREVIEW, shape, seed=seed + epoch,
                            on_row=stop_check(ctx, f"drawing the epoch {epoch} previews"))
                ctx.save_images(epoch_name("preview", epoch), imgs, ncols=5, levels=self.n_values, epoch=epoch)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"], seed=seed, device=device,
                          test_sample=hp["test_sample"])
        res = fit(model, loss, torch.as_tensor(train[idx]), torch.as_tensor(test), cfg, ctx, on_epoch_end)
        return Trained(model.eval(), self.config(model, shape), res, {"n_train": len(idx)})

    def final_samples(self, model, shape, seed: int = 0, ctx=None, n: int = N_FINAL) -> np.ndarray:
        """The deliverable: n samples; reports progress by row and stops on a cancel request."""
        H, ctx = shape[0], ctx or RunContext()

        def on_row(r, _):
            stop_check(ctx, f"drawing the final samples (row {r + 1} of {H})")()
            ctx.progress((r + 1) / H, f"drawing {n} samples: row {r + 1} of {H}")

        return draw(model, n, shape, seed, on_row=on_row)

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        t0 = time.time()
        samples = self.final_samples(trained.model, data.train.shape[1:], spec.seed, ctx)
        ctx.save_images("samples", samples, ncols=10, levels=self.n_values)
        return {**self.summary(trained), "sample_seconds": time.time() - t0, "n_train": trained.extras["n_train"]}


class BinaryQ(PixelCNNQ):
    key, title = "q2a", "PixelCNN (binary)"
    heading = "Question 2: PixelCNNs — (a) PixelCNNs on Shapes and MNIST"
    quick_seconds = {"shapes": 138}
    datasets = ("shapes", "mnist")
    reference = {"shapes": 0.0420}   # the course's final test loss (nats/dim)
    students = {"shapes": (0.034, 0.061), "mnist": (0.0755, 0.0790)}   # what students reached (spec.md)
    memory_fields = ("batch_size", "filters", "batch size, filters or layers")
    architecture = ("filters", "layers", "kernel_size")
    # from a trained model: a tenth of the homework rate, one pass over 2,000 images (~1-2 min on 2 CPU cores,
    # the final 100 samples included)
    finetune = {"epochs": 1, "lr": 1e-4, "subset": 2000.0, "test_sample": 500}
    fields = _fields(64, Field("layers", 5, 0, 20, help="k x k type-B convolutions after the type-A one "
                                                        "(two 1x1 type-B convolutions always follow)"))
    presets = {  # the first preset is the default on a CPU
        # measured on the 2-core box (bench.system.first_minutes): shapes 0.775 -> 0.0561 nats/dim in 138 s (10 epochs
        # took 251 s for 0.0517); MNIST not measured at 6 epochs (10 took 249 s on a faster day)
        "quick": {"filters": 32, "layers": 4, "epochs": 6, "batch_size": 32, "subset": 6000.0, "test_sample": 1000},
        "homework": {},   # the spec's net: 7x7 A, five 7x7 B, two 1x1 B, 64 filters; Adam 1e-3, batch 128, 10 epochs
    }


class ColourQ(PixelCNNQ):
    key, title = "q2b", "PixelCNN (colour)"
    heading = "Question 2: PixelCNNs — (b) PixelCNNs on Colored Shapes and MNIST: Independent Color Channels"
    quick_seconds = {"shapes-colored": 152}
    datasets = ("shapes-colored", "mnist-colored")
    n_values, residual, depth = 4, True, "blocks"
    reference = {"shapes-colored": 0.0444}
    students = {"shapes-colored": (0.0425, 0.080), "mnist-colored": (0.0787, 0.153)}
    memory_fields = ("batch_size", "filters", "batch size, filters or blocks")
    architecture = ("filters", "blocks", "kernel_size", "layer_norm")
    # the homework net is ~3x the binary one's work
    finetune = {"epochs": 1, "lr": 1e-4, "subset": 1000.0, "test_sample": 500}
    fields = _fields(120, Field("blocks", 8, 0, 20, help="residual blocks: 1x1 down to filters/2, k x k type B, "
                                                         "1x1 back up"),
                     (Field("layer_norm", True, label="layer norm",
                            help="over the channels of each pixel only, so no pixel sees a later one"),))
    presets = {  # the first preset is the default on a CPU
        # measured on the 2-core box (bench.system.first_minutes): coloured shapes 1.377 -> 0.0721 nats/dim in 152 s
        # (10 epochs took 285 s for 0.0550); coloured MNIST ~35 s per epoch (1.415 -> 0.345 after 4 epochs)
        "quick": {"filters": 64, "blocks": 3, "epochs": 5, "batch_size": 32, "subset": 6000.0, "test_sample": 1000},
        "homework": {"epochs": 15},  # 120 filters, 8 blocks, layer norm; Adam 1e-3, batch 128
    }


BINARY, COLOUR = BinaryQ(), ColourQ()
