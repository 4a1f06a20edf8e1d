"""Where training runs: CUDA, else Apple MPS, else CPU; and how many torch threads each run gets."""
from __future__ import annotations

import os


def available_devices() -> list[str]:
    import torch

    devs = []
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    devs.append("cpu")
    return devs


def pick_device(requested: str = "auto") -> str:
    """'auto' -> the best device present; an explicit request is checked and refused clearly if absent."""
    devs = available_devices()
    if requested in (None, "", "auto"):
        return devs[0]
    if requested not in devs:
        raise ValueError(f"device {requested!r} is not available here (available: {', '.join(devs)})")
    return requested


def describe(device: str) -> str:
    import torch

    if device == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(0)}"
    if device == "mps":
        return "Apple MPS"
    return f"CPU · {cpu_count()} cores"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def threads_per_run(max_concurrent: int) -> int:
    """Split the cores between the runs allowed at once, so concurrent workers don't oversubscribe the CPU."""
    return max(1, cpu_count() // max(1, max_concurrent))
