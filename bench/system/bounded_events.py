"""A run of any length stays cheap to watch: the events file of a 5,000,000-minibatch run, and what five learners
watching it cost the server.

    .venv/bin/python -m bench.system.bounded_events [--steps 5000000] [--sessions 5] [--legacy 1000000]

1. The run: a Q1a run on 1d-2 (8000 values) at batch size 1, 625 epochs = 5,000,000 minibatches. Training that
   for real takes hours on a 2-core box (a histogram step is ~0.4-2 ms here), so the benchmark drives the worker's
   real RunContext (the one that writes events.jsonl, with its thinning) with the run's exact sequence of events:
   a "start", one "train" event per minibatch (a loss that falls), a "test" and an "epoch" after every epoch, as
   core.train.fit emits them. It reports the file's size and lines.
2. Five learners: five Streamlit sessions (AppTest, the page script as the server runs it) open the Runs page on
   that run (watching and comparing it), one after another, then each reruns it (after one session on a small run,
   so the server's modules are loaded, as on a server that has served anyone); it reports the page time (median, max) and the growth of this
   process's resident memory (the server's) from before the first session to after the last.
3. (--legacy N) A file as the server wrote it before thinning (one line per minibatch, N of them) read through the
   shared view: its time and the memory it holds.

Prints one JSON line at the end. Targets: file <= 50 MB, RSS growth <= 200 MB, page <= 1 s.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_run(store, steps: int, spe: int) -> tuple[str, float]:
    """Submit the run, then write its events through the worker's RunContext as fit would; -> (run id, seconds)."""
    from core.engine import RunSpec
    from core.engine.worker import RunContext

    epochs = steps // spe
    rid = store.submit(RunSpec("q1a", "1d-2", {"epochs": epochs, "batch_size": 1}, owner="b:bench", owner_name="bench"),
                       start=False)
    ctx = RunContext(store.dir(rid))
    t0 = time.time()
    ctx.emit("start", steps_per_epoch=spe, epochs=epochs, n_train=spe, n_test=2000)
    ctx.emit("test", epoch=0, loss=4.605)
    step = 0
    for epoch in range(1, epochs + 1):
        te = time.time()
        for _ in range(spe):
            step += 1
            ctx.emit("train", step=step, epoch=step / spe, loss=4.6 / (1 + step / 1e5) + (step % 13) * 1e-3, lr=1e-3)
        ctx.emit("test", epoch=epoch, loss=4.6 / (1 + step / 1e5))
        ctx.emit("epoch", epoch=epoch, seconds=time.time() - te)
    ctx.close()
    store.set_status(rid, state="done", started=t0, ended=time.time(),
                     result={"test_loss": 4.6 / (1 + step / 1e5), "unit": "nats/dim"})
    return rid, time.time() - t0


def page(rid: str):
    from streamlit.testing.v1 import AppTest

    from ui.identity import Me

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["me"] = Me("b:bench", "bench")
    at.run()
    at.switch_page("pages/runs.py")
    at.query_params["run"] = rid
    at.query_params["compare"] = rid
    t = time.time()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at, time.time() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5_000_000)
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--legacy", type=int, default=1_000_000, help="lines of an unthinned file to read (0: skip)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="arlab-bounded-"))
    os.environ["ARLAB_RUNS_DIR"] = str(tmp / "runs")
    from core.engine import Policy, stream
    from core.lab import store as make_store

    store = make_store(tmp / "runs", policy=Policy(slots=1, owner_queued=None, owner_running=None))
    rid, write_s = write_run(store, args.steps, 8000)
    events = store.dir(rid) / "events.jsonl"
    size_mb = events.stat().st_size / 1e6
    lines = sum(1 for _ in open(events, "rb"))
    print(f"run {rid}: {args.steps:,} minibatches written in {write_s:.1f} s -> events.jsonl {size_mb:.2f} MB, "
          f"{lines:,} lines", flush=True)

    warm, _ = write_run(store, 8000, 8000)   # a server has its modules loaded: one session on a small run first
    page(warm)
    gc.collect()
    before = rss_mb()
    first, sessions = [], []
    for i in range(args.sessions):
        at, s = page(rid)
        first.append(s)
        sessions.append(at)
        print(f"session {i + 1}: first render {s:.2f} s, RSS {rss_mb():.0f} MB", flush=True)
    again = []
    for at in sessions:
        t = time.time()
        at.run()
        again.append(time.time() - t)
    gc.collect()
    growth = rss_mb() - before
    times = first + again
    out = {"bench": "bounded_events", "steps": args.steps, "events_mb": round(size_mb, 2), "events_lines": lines,
           "write_s": round(write_s, 1), "sessions": args.sessions, "rss_growth_mb": round(growth, 1),
           "page_median_s": round(statistics.median(times), 3), "page_max_s": round(max(times), 3),
           "train_points_held": len(stream.shared(store, rid).train)}

    if args.legacy:
        rid2 = store.submit(__import__("core.engine", fromlist=["RunSpec"]).RunSpec(
            "q1a", "1d-2", {"epochs": 1}, owner="b:bench"), start=False)
        with open(store.dir(rid2) / "events.jsonl", "w") as f:
            f.write(json.dumps({"type": "start", "steps_per_epoch": args.legacy, "epochs": 1, "t": 0}) + "\n")
            for i in range(args.legacy):
                f.write(json.dumps({"type": "train", "t": 1e9 + i, "step": i + 1, "epoch": (i + 1) / args.legacy,
                                    "loss": 1.0 + (i % 7) * 0.1, "lr": 1e-3}) + "\n")
        gc.collect()
        m0, t = rss_mb(), time.time()
        v = stream.shared(store, rid2)
        read_s = time.time() - t
        gc.collect()
        out.update({"legacy_lines": args.legacy, "legacy_mb": round((store.dir(rid2) / "events.jsonl").stat().st_size
                                                                    / 1e6, 1),
                    "legacy_read_s": round(read_s, 2), "legacy_rss_growth_mb": round(rss_mb() - m0, 1),
                    "legacy_points_held": len(v.train)})
    out["targets_met"] = out["events_mb"] <= 50 and out["rss_growth_mb"] <= 200 and out["page_max_s"] <= 1.0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
