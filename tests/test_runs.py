"""The run engine's lifecycle, with real worker processes."""
import json
import os
import signal
import time

import pytest
import torch

from core.engine import write_json_atomic
from core.lab import InvalidSpec, RunSpec, store as RunStore
from core.train import NonFiniteLoss, TrainConfig, fit
from tests.conftest import wait_for

QUICK = {"epochs": 2, "batch_size": 256, "lr": 0.05}
LONG = {"epochs": 600, "batch_size": 1, "lr": 0.01}   # 8000 steps an epoch (4.8 M, under the step ceiling): runs until told to stop


def state(store, rid):
    return store.status(rid).get("state")


def test_a_run_goes_queued_running_done_with_every_event(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    rid = store.submit(RunSpec("q1a", "1d-1", QUICK))
    wait_for(lambda: state(store, rid) == "done", what="done")
    events, _ = store.events(rid)
    train = [e for e in events if e["type"] == "train"]
    test = [e for e in events if e["type"] == "test"]
    assert len(test) == 3 and [e["epoch"] for e in test] == [0, 1, 2]
    assert len(train) == 2 * 4          # 800 values / batch 256 = 4 steps an epoch
    assert store.status(rid)["result"]["test_loss"] == pytest.approx(test[-1]["loss"])
    assert (runs_dir / rid / "model.safetensors").exists()


def test_a_continued_run_starts_from_the_weights_it_names(runs_dir):
    """RunSpec.init: the continued run's untrained test loss (epoch 0) is the first run's final one; a model of
    another shape is refused with a plain reason; a source that does not exist fails the run saying so."""
    from core.engine.worker import main as run_worker

    store = RunStore(runs_dir, max_concurrent=1)
    first = store.submit(RunSpec("q1b", "1d-1", QUICK), start=False)
    assert run_worker(str(runs_dir / first)) == 0
    final = store.status(first)["result"]["test_loss"]
    more = store.submit(RunSpec("q1b", "1d-1", QUICK, seed=5, init=f"run:{first}"), start=False)
    assert run_worker(str(runs_dir / more)) == 0
    events, _ = store.events(more)
    assert [e["loss"] for e in events if e["type"] == "test"][0] == pytest.approx(final, rel=1e-6)
    assert any("continuing from" in e.get("msg", "") for e in events)
    fresh = store.submit(RunSpec("q1b", "1d-1", QUICK, seed=5), start=False)
    assert run_worker(str(runs_dir / fresh)) == 0
    assert [e["loss"] for e in store.events(fresh)[0] if e["type"] == "test"][0] > final + 0.1  # it would differ
    other = store.submit(RunSpec("q1b", "1d-1", {**QUICK, "components": 7}, init=f"run:{first}"), start=False)
    run_worker(str(runs_dir / other))
    assert state(store, other) == "failed" and "does not fit" in store.status(other)["reason"]
    gone = store.submit(RunSpec("q1b", "1d-1", QUICK, init="run:20990101-000000-q1b-nothere"), start=False)
    run_worker(str(runs_dir / gone))
    assert state(store, gone) == "failed" and "nothere" in store.status(gone)["reason"]


def test_invalid_spec_is_rejected_before_anything_starts(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    with pytest.raises(InvalidSpec) as e:
        store.submit(RunSpec("q1a", "1d-1", {"lr": -3, "epochs": "many"}))
    assert "lr" in e.value.errors and "epochs" in e.value.errors
    assert "between" in e.value.errors["lr"]
    with pytest.raises(InvalidSpec) as e:
        store.submit(RunSpec("q9z", "1d-1", {}))
    assert "question" in e.value.errors
    assert store.ids() == []


def test_queue_limit_cancel_and_the_next_run_starting(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    first = store.submit(RunSpec("q1a", "1d-2", LONG))
    second = store.submit(RunSpec("q1a", "1d-1", QUICK))
    assert state(store, first) == "running" and state(store, second) == "queued"
    wait_for(lambda: any(e["type"] == "train" for e in store.events(first)[0]), what="first minibatch")
    assert store.pump() == [] and state(store, second) == "queued"   # the limit holds
    assert store.cancel(first) == "cancelling"
    wait_for(lambda: state(store, first) == "cancelled", what="cancelled")
    assert "cancelled at step" in store.status(first)["reason"]
    kept = [e for e in store.events(first)[0] if e["type"] == "train"]
    assert kept, "a cancelled run keeps what it recorded"
    # the finishing worker starts the queued run itself, with no page open
    wait_for(lambda: state(store, second) == "done", what="second run done")


def test_cancel_a_queued_run_and_delete_rules(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    first = store.submit(RunSpec("q1a", "1d-2", LONG))
    second = store.submit(RunSpec("q1a", "1d-1", QUICK))
    assert store.cancel(second) == "cancelled"
    with pytest.raises(RuntimeError, match="cancel it first"):
        store.delete(first)
    store.cancel(first)
    wait_for(lambda: state(store, first) == "cancelled", what="cancelled")
    store.delete(first)
    assert first not in store.ids()


def test_a_worker_killed_with_sigkill_ends_failed_with_a_reason(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    rid = store.submit(RunSpec("q1a", "1d-2", LONG))
    wait_for(lambda: any(e["type"] == "train" for e in store.events(rid)[0]), what="training")
    os.kill(store.status(rid)["pid"], signal.SIGKILL)
    wait_for(lambda: (store.pump(), state(store, rid))[1] == "failed", what="failed")
    assert "ended without finishing" in store.status(rid)["reason"]


def test_restart_recovery_marks_orphaned_runs_failed(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    rid = store.submit(RunSpec("q1a", "1d-1", QUICK), start=False)
    # as if a server died while this run's worker was running, and the worker died too
    store.set_status(rid, state="running", pid=2**22 + 12345, started=time.time())
    fresh = RunStore(runs_dir, max_concurrent=1)          # a restarted server
    fresh.pump()
    assert state(fresh, rid) == "failed"


def test_a_run_that_raises_ends_failed_with_the_message(runs_dir):
    store = RunStore(runs_dir, max_concurrent=1)
    rid = store.submit(RunSpec("q1a", "1d-1", QUICK), start=False)
    spec = json.loads((runs_dir / rid / "spec.json").read_text())
    spec["hparams"]["lr"] = -1.0                          # tampered after validation: the worker must refuse
    write_json_atomic(runs_dir / rid / "spec.json", spec)
    store.pump()
    wait_for(lambda: state(store, rid) == "failed", what="failed")
    assert "lr" in store.status(rid)["reason"]


def test_nan_loss_stops_training_with_a_clear_error():
    model = torch.nn.Linear(1, 1)
    loss_fn = lambda m, x: m(x.float()[:, None]).mean() * float("nan")
    with pytest.raises(NonFiniteLoss, match="learning rate"):
        fit(model, loss_fn, torch.arange(10), torch.arange(4), TrainConfig(epochs=1, batch_size=5))


def test_pretrain_records_a_continued_checkpoint_honestly(runs_dir, tmp_path):
    """core.pretrain --init: the entry names what it continued from and labels its preset so."""
    from core.engine.worker import main as run_worker
    from core.pretrain import pretrain

    store = RunStore(runs_dir, max_concurrent=1)
    first = store.submit(RunSpec("q1b", "1d-1", QUICK), start=False)
    assert run_worker(str(runs_dir / first)) == 0
    entry = pretrain("q1b-more", "q1b", "1d-1", "quick", dict(QUICK), "cpu", 0, tmp_path / "out", runs_dir,
                     init=f"run:{first}")
    assert entry["continued_from"]["source"] == f"run:{first}"
    assert entry["preset"].endswith(f"(continued from run:{first})") and entry["epochs"] == QUICK["epochs"]
    assert entry["test_loss"] < store.status(first)["result"]["test_loss"] + 1e-6
    assert (tmp_path / "out" / "q1b-more.safetensors").is_file() and "data_version" not in entry  # 1d-1: no version
