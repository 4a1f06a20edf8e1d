"""The one training loop every question uses.

It records the training loss of every minibatch and the test loss on the whole test set once before training
and after every epoch (so `epochs + 1` values), all in nats/dim; it emits events, honours a cancel request
between minibatches and between evaluation batches, and stops with a clear error on a non-finite loss.

    loss_fn(model, batch) -> loss            # mean nats/dim over the batch, a scalar tensor
                          -> (loss, weight)  # or with the number of items it averages over (for ragged data)
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .context import RunContext
from .models import evaluating


class RunCancelled(Exception):
    """Raised between minibatches (evaluation batches, sampling steps, ...) when the run was asked to stop."""


def stop_check(ctx, phase: str):
    """A check for loops and samplers' step callbacks (any arguments): raises RunCancelled("cancelled while
    <phase>") once the run was asked to stop (ctx None: never)."""
    def check(*_):
        if ctx is not None and ctx.cancelled():
            raise RunCancelled(f"cancelled while {phase}")
    return check


def max_steps() -> int:
    """Minibatches one run may take in all (ARLAB_MAX_STEPS, default 5,000,000): validation refuses settings that
    would need more, and `fit` stops a run that reaches it anyway (keeping its events)."""
    import os

    raw = os.environ.get("ARLAB_MAX_STEPS", "")
    try:
        return max(1, int(raw)) if raw else 5_000_000
    except ValueError:
        raise ValueError(f"the setting ARLAB_MAX_STEPS={raw!r} must be a whole number") from None


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"          # adam | adamw | sgd
    weight_decay: float = 0.0
    grad_clip: float | None = None   # max gradient norm; None = off
    warmup_steps: int = 0            # linear warm-up from 0 to lr
    schedule: str = "constant"       # constant | cosine (cosine decays to 0 over all steps after warm-up)
    seed: int = 0
    device: str = "cpu"
    eval_batch_size: int | None = None  # defaults to 2 x batch_size
    # 0: the whole test set is scored before training and after every epoch. N: a seeded sample of N test examples
    # is scored before training and after every epoch but the last, which scores the whole set (a curve point in
    # seconds, not a minute, and the same final number)
    test_sample: int = 0


@dataclass
class TrainResult:
    train_losses: list[float] = field(default_factory=list)  # one per minibatch
    test_losses: list[float] = field(default_factory=list)   # epochs + 1
    steps_per_epoch: int = 0
    seconds: float = 0.0

    def as_dict(self):
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def subset_indices(n: int, amount: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of n rows: amount <= 1 is a share, above 1 a number of rows."""
    keep = min(n, max(1, round(amount * n)) if amount <= 1 else int(amount))
    if keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:keep])


def subset(x, amount: float, seed: int):
    """The rows of subset_indices (all of x, unchanged, when it keeps everything)."""
    idx = subset_indices(len(x), amount, seed)
    return x if len(idx) == len(x) else x[idx]


def _n(data) -> int:
    return len(data[0] if isinstance(data, (tuple, list)) else data)


def _to(data, device):
    if isinstance(data, (tuple, list)):
        return type(data)(d.to(device) for d in data)
    return data.to(device)


def sample_rows(test, count: int, seed: int):
    """The test examples a run scores per epoch: `count` of them, a seeded random sample in their order (all of
    `test`, unchanged, when count is 0 or not below its size)."""
    n = _n(test)
    if not count or count >= n:
        return test
    idx = torch.as_tensor(np.sort(np.random.default_rng(seed).permutation(n)[:int(count)]))
    return _take(test, idx.to(_device_of(test)), _device_of(test))


def _take(data, idx, device):
    if isinstance(data, (tuple, list)):
        return type(data)(d[idx].to(device, non_blocking=True) for d in data)
    return data[idx].to(device, non_blocking=True)


def _device_of(data):
    return (data[0] if isinstance(data, (tuple, list)) else data).device


def _split_loss(out):
    if isinstance(out, tuple):
        return out[0], float(out[1])
    return out, None


def evaluate(model, loss_fn, data, batch_size: int, device: str = "cpu", ctx=None,
             phase: str = "evaluating") -> float:
    """Mean loss over the whole data set, weighted by batch size (or by the weight loss_fn returns); with a ctx it
    stops between batches on a cancel request ("cancelled while <phase>")."""
    check = stop_check(ctx, phase)
    total, weight = 0.0, 0.0
    n = _n(data)
    with torch.no_grad(), evaluating(model):
        for start in range(0, n, batch_size):
            check()
            idx = torch.arange(start, min(start + batch_size, n), device=_device_of(data))
            loss, w = _split_loss(loss_fn(model, _take(data, idx, device)))
            w = len(idx) if w is None else w
            total += loss.item() * w
            weight += w
    return total / max(weight, 1e-12)


def make_optimizer(model, cfg: TrainConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (use adam, adamw or sgd)")


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier on the base learning rate at `step` (0-based): linear warm-up, then constant or cosine."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        span = max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))
    return 1.0


def fit(model, loss_fn, train, test, cfg: TrainConfig, ctx=None, on_epoch_end=None) -> TrainResult:
    """Train `model` with minibatches of `train` (a tensor or tuple of tensors, first dim = examples).

    on_epoch_end(epoch, model) is called after each epoch's test loss (e.g. to draw preview samples).
    The test loss is of the whole test set, or (cfg.test_sample) of a sample of it except after the last epoch.
    Emits events: start {..., test_sample when a sample}, train {step, epoch, loss, lr}, test {epoch, loss, n: the
    examples scored}, epoch {epoch, seconds}.
    """
    ctx = ctx or RunContext()
    seed_everything(cfg.seed)
    device = cfg.device
    if ctx.init_state is not None:  # a continued run: start from those weights (once: later fits start fresh)
        state, ctx.init_state = ctx.init_state, None
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError("the model to continue from does not fit this run's model (other sizes or layers): "
                             + str(e).splitlines()[0]) from None
    model.to(device)
    opt = make_optimizer(model, cfg)
    if device != "cpu":  # the data sets are small: keep them on the accelerator, not one copy per step
        train, test = _to(train, device), _to(test, device)
    n = _n(train)
    if n == 0:
        raise ValueError("the training set is empty")
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    total = steps_per_epoch * cfg.epochs
    eval_bs = cfg.eval_batch_size or 2 * bs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.warmup_steps, cfg.schedule))
    gen = torch.Generator().manual_seed(cfg.seed)
    res = TrainResult(steps_per_epoch=steps_per_epoch)
    t0 = time.time()

    sample = sample_rows(test, cfg.test_sample, cfg.seed + 1)
    n_sample = _n(sample)
    ctx.emit("start", steps_per_epoch=steps_per_epoch, epochs=cfg.epochs, n_train=n, n_test=_n(test),
             **({"test_sample": n_sample} if n_sample < _n(test) else {}))

    def score(epoch: int, phase: str):
        part = test if epoch == cfg.epochs else sample
        res.test_losses.append(evaluate(model, loss_fn, part, eval_bs, device, ctx, phase))
        ctx.emit("test", epoch=epoch, loss=res.test_losses[-1], n=_n(part))

    score(0, "evaluating the untrained model")
    step, limit = 0, max_steps()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(_device_of(train))
        te = time.time()
        for start in range(0, n, bs):
            if ctx.cancelled():
                raise RunCancelled(f"cancelled at step {step} (epoch {epoch})")
            if step >= limit:
                raise RunCancelled(f"stopped at this server's ceiling of {limit:,} minibatches per run "
                                   f"(ARLAB_MAX_STEPS), in epoch {epoch}")
            batch = _take(train, perm[start:start + bs], device)
            loss, _ = _split_loss(loss_fn(model, batch))
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"the loss became {loss.item()} at step {step + 1} (epoch {epoch}); "
                                    f"try a lower learning rate or gradient clipping")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            res.train_losses.append(loss.item())
            ctx.emit("train", step=step, epoch=step / steps_per_epoch, loss=res.train_losses[-1],
                     lr=opt.param_groups[0]["lr"])
        score(epoch, f"evaluating epoch {epoch}")
        ctx.emit("epoch", epoch=epoch, seconds=time.time() - te)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
    res.seconds = time.time() - t0
    return res
