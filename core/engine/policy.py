"""The queue's rules for a shared server: slots, per-owner caps, the order runs start in, budgets, pruning.

Every number comes from a setting (an environment variable, read when a RunStore is made), with a default fit for
one machine serving a class:

    ARLAB_SLOTS               runs at once per device (default: 1 on a CPU, 4 per GPU: small runs share a card)
    ARLAB_MAX_WORKERS         runs at once in all (overrides slots x devices; with Ray: runs handed to the cluster
                              at once, default 64: the cluster holds each until a node has room)
    ARLAB_OWNER_RUNNING       runs one owner may have running at once (default 2)
    ARLAB_OWNER_QUEUED        runs one owner may have waiting (default 3)
    ARLAB_QUEUE_MAX           runs waiting in all (default 200)
    ARLAB_RUN_BUDGET_S        wall-clock seconds a run may train (on any device) before it is stopped, keeping what
                              it has (default 3600; 0 = no budget)
    ARLAB_MAX_STEPS           minibatches a run may take in all (default 5,000,000; core.train.max_steps)
    ARLAB_CANCEL_GRACE_S      seconds a cancelled run has to stop by itself before it is stopped by force (30)
    ARLAB_KEEP_DAYS           finished runs older than this are pruned (default 30; 0 = never)
    ARLAB_KEEP_GB             when all runs take more than this, the oldest finished ones are pruned (default 20)

The order (round robin across owners): a waiting run's *round* is how many runs its owner started in the last
FAIR_WINDOW_S plus how many of the owner's runs wait before it; runs start by round, then by age. So nobody waits
behind someone else's second run while their own first one waits, and an owner at their running cap is skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

FAIR_WINDOW_S = 3 * 3600


def _env_num(name: str, default, cast=int):
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ValueError(f"the setting {name}={raw!r} must be a number") from None


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


@dataclass
class Policy:
    slots: int = 1                       # runs at once in all
    gpus: int = 0                        # GPUs to spread them over (each worker is pinned to one)
    owner_running: int | None = 2        # None = no cap
    owner_queued: int | None = 3
    queue_max: int | None = 200
    budget_s: float = 3600.0             # on any device; 0 = none
    grace_s: float = 30.0
    keep_days: float = 30.0
    keep_gb: float = 20.0

    @classmethod
    def from_env(cls, max_concurrent: int | None = None, placed_by_cluster: bool = False) -> "Policy":
        """placed_by_cluster: a cluster launcher (Ray) decides where and when a run fits; then `slots` is how many
        runs the app hands it at once (ARLAB_MAX_WORKERS, default 64) and no GPU is pinned here."""
        gpus = 0 if placed_by_cluster else gpu_count()
        per_device = _env_num("ARLAB_SLOTS", 4 if gpus else 1)
        slots = max_concurrent or _env_num("ARLAB_MAX_WORKERS", 64 if placed_by_cluster else per_device * max(1, gpus))
        return cls(slots=max(1, slots), gpus=gpus,
                   # on a cluster a handed-over run waits there in submission order: one per owner at a time
                   # keeps that order fair (a second run is handed over only when the first has ended)
                   owner_running=_env_num("ARLAB_OWNER_RUNNING", 1 if placed_by_cluster else 2) or None,
                   owner_queued=_env_num("ARLAB_OWNER_QUEUED", 3) or None,
                   queue_max=_env_num("ARLAB_QUEUE_MAX", 200) or None,
                   budget_s=_env_num("ARLAB_RUN_BUDGET_S", 3600.0, float),
                   grace_s=_env_num("ARLAB_CANCEL_GRACE_S", 30.0, float),
                   keep_days=_env_num("ARLAB_KEEP_DAYS", 30.0, float),
                   keep_gb=_env_num("ARLAB_KEEP_GB", 20.0, float))


def order(entries: list[dict], now: float) -> list[str]:
    """The waiting runs' ids in the order they will start. entries: [{"id", "spec", "status"}]."""
    started: dict[str, int] = {}
    for e in entries:
        t = e["status"].get("started")
        if t and now - t < FAIR_WINDOW_S:
            started[owner_of(e)] = started.get(owner_of(e), 0) + 1
    waiting = sorted((e for e in entries if e["status"].get("state") == "queued"),
                     key=lambda e: (e["status"].get("created") or 0, e["id"]))
    seen: dict[str, int] = {}
    keyed = []
    for e in waiting:
        o = owner_of(e)
        keyed.append((started.get(o, 0) + seen.get(o, 0), e["status"].get("created") or 0, e["id"]))
        seen[o] = seen.get(o, 0) + 1
    return [rid for *_, rid in sorted(keyed)]


def owner_of(entry: dict) -> str:
    return entry["spec"].get("owner", "") or ""


def estimate_wait(position: int, slots: int, typical_s: float | None, running_left: list[float]) -> float | None:
    """Rough seconds until the run at `position` (0 = next) starts: the slots free up as the running runs end
    (their expected time left), then each later run takes about `typical_s`."""
    if typical_s is None:
        return None
    free_at = sorted(max(0.0, t) for t in running_left)[:slots]
    free_at += [0.0] * (slots - len(free_at))
    for _ in range(position):                     # each run ahead takes the earliest free slot
        free_at.sort()
        free_at[0] += typical_s
    return min(free_at)
