"""The run engine: run records on disk, the queue, the launchers that start workers, the worker itself.

    runs.py       RunSpec (what to run), RunStore (the run folders and the queue), the small file helpers
    launcher.py   the seam: a Launcher starts, checks and stops a worker by a handle (LocalProcessLauncher here)
    ray_launcher.py  the same seam on a Ray cluster; spawn.py: what both launchers share (worker module, settings)
    worker.py     python -m core.engine.worker RUN_DIR: one run in its own process (the one place the engine
                  meets the questions: it runs the question the spec names)
    device.py     which device a run uses and how many torch threads it gets

The engine knows nothing about questions: a RunStore is handed a validator (core.questions.validate) and calls it
before anything is written. Questions never import the engine; pages reach it only through the ui package.
"""
from .launcher import Launcher, LocalProcessLauncher  # noqa: F401
from .policy import Policy  # noqa: F401
from .runs import (ACTIVE, STATES, InvalidSpec, QueueFull, RunSpec, RunStore, default_root, read_events,  # noqa: F401
                   read_json, write_json_atomic)
