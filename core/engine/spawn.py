"""What every launcher shares (the local one, launcher.py, and the Ray one, ray_launcher.py): the worker module
they start, the settings a worker is given, and the error a launcher raises when it cannot start anything now.
Both launchers import this; it imports neither.
"""
from __future__ import annotations

WORKER_MODULE = "core.engine.worker"


# The settings a worker reads (an allow-list): a worker gets these and nothing else of the server's ARLAB_*
# settings, so secrets such as ARLAB_INSTRUCTOR_KEY never leave the server (a Ray job's runtime_env is shown on the
# cluster's dashboard).
WORKER_SETTINGS = ("ARLAB_RUNS_DIR", "ARLAB_DATA_DIR", "ARLAB_POETRY", "ARLAB_SLOTS", "ARLAB_WORKER_MEM_MB",
                   "ARLAB_WORKER_NICE", "ARLAB_MAX_STEPS", "ARLAB_MAX_TRAIN_POINTS", "ARLAB_LAUNCHER",
                   "ARLAB_GPU_SHARE", "ARLAB_THREADS", "ARLAB_WARM_WORKERS",
                   # a local worker starts the next queued run when it ends: the queue's settings, as the server's
                   "ARLAB_MAX_WORKERS", "ARLAB_OWNER_RUNNING", "ARLAB_OWNER_QUEUED", "ARLAB_QUEUE_MAX",
                   "ARLAB_RUN_BUDGET_S", "ARLAB_CANCEL_GRACE_S", "ARLAB_KEEP_DAYS", "ARLAB_KEEP_GB")


def worker_env(environ) -> dict:
    """The ARLAB_* settings a worker needs, from `environ` (the allow-list above)."""
    return {k: v for k, v in environ.items() if k in WORKER_SETTINGS}


class LauncherUnavailable(RuntimeError):
    """The launcher cannot start anything now (e.g. a cluster that does not answer): runs stay queued."""
