"""How long the learner waits for each new interaction, with the shipped checkpoints (Streamlit AppTest, the
whole page script rerun per interaction, as the server does it).

    .venv/bin/python -m bench.system.interactions [--repeats 3]

Interactions: the Runs page comparing two runs (smoothing moved), scrubbing one run's epochs, a Q2 link restored,
and one step of the next-token views on Q3 (shapes), Q5 and Q6 (a draw). Prints the median seconds of each and
one JSON line. Runs live in a temporary folder (two quick Q1 runs and a tiny Q3 run are trained first).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def page(path, query=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page(path)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def timed(at, act, repeats):
    out = []
    for i in range(repeats):
        act(at, i)
        t = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - t)
        assert not at.exception, [e.value for e in at.exception]
    return statistics.median(out)


def button(label):
    return lambda at, i: next(b for b in at.button if b.label == label).click()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    runs = Path(tempfile.mkdtemp(prefix="arlab-bench-")) / "runs"
    os.environ["ARLAB_RUNS_DIR"] = str(runs)
    from core.engine import worker
    from core.lab import RunSpec, store
    from core.questions import get

    s = store(runs)
    ids = []
    for lr in (0.1, 0.02):
        rid = s.submit(RunSpec("q1a", "1d-1", {**get("q1a").preset("quick"), "lr": lr}, preset="quick"), start=False)
        worker.main(str(runs / rid))
        ids.append(rid)
    q3 = s.submit(RunSpec("q3b", "shapes-colored", {**get("q3b").preset("quick"), "epochs": 3, "data_fraction": 0.05,
                                                    "preview_samples": 9}, preset="quick"), start=False)
    worker.main(str(runs / q3))
    res = {}
    at = page("pages/runs.py", {"compare": ids, "run": q3})
    res["compare: move the smoothing"] = timed(at, lambda at, i: at.slider(key="runs:smooth").set_value(0.3 + 0.1 * i),
                                               a.repeats)
    res["scrub: another epoch"] = timed(at, lambda at, i: at.select_slider(
        key=f"scrub:runs:{q3}:samples_epoch").set_value(1 + i % 3), a.repeats)
    t = time.perf_counter()
    page("pages/q2_pixelcnn.py", {"dataset": "shapes", "q2a.preset": "quick", "q2a.lr": "0.005"})
    res["open a shared Q2 link (first load)"] = time.perf_counter() - t
    res["next pixel (Q3, shapes)"] = timed(page("pages/q3_transformer.py"), button("Draw the highlighted token"),
                                           a.repeats)
    res["next character (Q5)"] = timed(page("pages/q5_poetry.py"), button("Draw the highlighted token"), a.repeats)
    res["next token (Q6)"] = timed(page("pages/q6_multimodal.py"), button("Draw the highlighted token"), a.repeats)
    for k, v in res.items():
        print(f"{k:40s} {v:6.2f} s", flush=True)
    print(json.dumps({k: round(v, 3) for k, v in res.items()}))


if __name__ == "__main__":
    main()
