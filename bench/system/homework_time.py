"""How long the whole homework takes: `python -m core all` timed, with each run's wall time and final loss.

    python -m bench.system.homework_time --out DIR [--preset homework] [--device cuda] [--jobs 4] [-- EXTRA ARGS]

Runs `python -m core all --preset P --device D --jobs K --out DIR/figures` with its runs in DIR/runs (a fresh
folder, so the app's runs/ is untouched), then prints and writes DIR/timing.json and DIR/timing.md: the whole
command's wall time, and per run its question, data set, seconds from its worker's launch to its end (starting
Python and torch, loading data, training, the final samples), seconds from submission to launch (waiting for a
free job slot), and the final test loss with its unit — sorted longest first, so what dominates is the first line.
Arguments after `--` go to `python -m core all` (e.g. `-- --epochs 1 --data-fraction 0.02` for a smoke run on a CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def table(runs_dir: Path) -> list[dict]:
    rows = []
    for d in sorted(Path(runs_dir).iterdir()):
        try:
            spec = json.loads((d / "spec.json").read_text())
            st = json.loads((d / "status.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        res = st.get("result") or {}
        began, ended = st.get("started") or st.get("began"), st.get("ended")
        rows.append({"question": spec["question"], "dataset": spec["dataset"], "state": st.get("state"),
                     "seconds": round(ended - began, 1) if began and ended else None,
                     "waited": round(began - st["created"], 1) if st.get("created") and began else None,
                     "test_loss": res.get("test_loss"), "unit": res.get("unit", ""), "device": st.get("device")})
    return sorted(rows, key=lambda r: -(r["seconds"] or 0))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="homework")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--jobs", type=int, default=4)
    a = ap.parse_args(argv)
    out = Path(a.out)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "core", "all", "--preset", a.preset, "--device", a.device, "--jobs", str(a.jobs),
           "--out", str(out / "figures"), *extra]
    print("$ " + " ".join(cmd[1:]), flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, cwd=ROOT, env={**os.environ, "ARLAB_RUNS_DIR": str(runs)})
    wall = time.time() - t0
    rows = table(runs)
    lines = [f"`python -m core all --preset {a.preset} --device {a.device} --jobs {a.jobs} {' '.join(extra)}`: "
             f"{wall:.0f} s wall, exit {rc}, {sum(r['state'] == 'done' for r in rows)}/{len(rows)} runs done", "",
             "| run | state | seconds | waited for a slot | test loss |", "|---|---|---|---|---|"]
    for r in rows:
        loss = f"{r['test_loss']:.4f} {r['unit']}" if r["test_loss"] is not None else ""
        lines.append(f"| {r['question']} {r['dataset']} | {r['state']} | {r['seconds']} | {r['waited']} | {loss} |")
    text = "\n".join(lines)
    print(text)
    (out / "timing.md").write_text(text + "\n")
    (out / "timing.json").write_text(json.dumps({"wall_s": round(wall, 1), "exit": rc, "command": cmd[2:],
                                                 "runs": rows}, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
