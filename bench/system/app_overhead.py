"""Does the app slow the runs it shows?  python -m bench.system.app_overhead [--epochs 3] [--repeats 1]

Starts the real app exactly as the README does (bench.server.App: `bash lab.sh app`, on a free localhost port, a
private runs folder), then times the epochs of one quick run three ways, in one process, for Q2 (PixelCNN, shapes)
and Q3 (iGPT, shapes):
    none   no browser connected
    home   a headless Chromium on the Home page
    watch  a headless Chromium on the run's own question page, which redraws the live curve every second
Epoch seconds come from the worker's own `epoch` events (training only, not the per-epoch preview samples). The
server's CPU share is read from /proc while the run is watched. Prints a table, the ratios, and one JSON line:
    {"q2_watch_ratio", "q3_watch_ratio", "q2_home_ratio", "q3_home_ratio", "server_cpu_pct", ...}
Bounded: every wait has a timeout, the server and Chromium are stopped at the end (also on error).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.server import CHROMIUM, CHROMIUM_ARGS, App

TICKS = os.sysconf("SC_CLK_TCK")

# (question, data set, preset, overrides, page path): the quick presets, a few epochs and a smaller subset so
# each timed run is ~30 s on 2 CPU cores
CASES = {
    "q2": ("q2a", "shapes", "quick", {"subset": 3000.0}, "/q2_pixelcnn"),
    "q3": ("q3a", "shapes", "quick", {"data_fraction": 0.1, "preview_samples": 4}, "/q3_transformer"),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def browser_cpu_seconds() -> float:
    """CPU seconds of every live Chromium process (the headless browser of this benchmark)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if "chrom" in (proc / "comm").read_text():
                    total += cpu_seconds(int(proc.name))
            except (OSError, ValueError, IndexError):
                pass
    return total


class Browser:
    """One headless Chromium page (None = no browser)."""

    def __init__(self, url: str | None):
        self.pw = self.browser = None
        if url is None:
            return
        from playwright.sync_api import sync_playwright

        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 1400})
        self.page.goto(url, wait_until="networkidle", timeout=120_000)
        self.page.get_by_text("Queue:").first.wait_for(timeout=120_000)   # the app has drawn

    def close(self):
        if self.browser:
            self.browser.close()
        if self.pw:
            self.pw.stop()


def timed_run(store, case, epochs: int, server_pid: int, url: str | None, timeout: float = 600) -> dict:
    """Submit the run, then open the browser (so the watched page finds the run), and wait for the end. The first
    epoch also pays for the browser's start: the median over epochs 2.. is what is compared."""
    from core import questions
    from core.lab import RunSpec

    q, dataset, preset, over, _ = case
    hp = {**questions.get(q).preset(preset), **over, "epochs": epochs}
    rid = store.submit(RunSpec(question=q, dataset=dataset, hparams=hp, seed=0, preset=preset))
    br = Browser(url)
    try:
        t0, c0, b0 = time.time(), cpu_seconds(server_pid), browser_cpu_seconds()
        while time.time() - t0 < timeout:
            st = store.status(rid).get("state")
            if st not in ("queued", "running"):
                break
            time.sleep(0.5)
        else:
            store.cancel(rid)
            raise RuntimeError(f"run {rid} did not finish within {timeout:.0f} s")
        wall, cpu, bcpu = time.time() - t0, cpu_seconds(server_pid) - c0, browser_cpu_seconds() - b0
    finally:
        br.close()
    if st != "done":
        raise RuntimeError(f"run {rid} ended {st}: {store.status(rid).get('reason')}")
    events, _ = store.events(rid)
    secs = [e["seconds"] for e in events if e["type"] == "epoch"]
    return {"run": rid, "epoch_seconds": secs, "median_epoch_s": statistics.median(secs[1:] or secs),
            "wall_s": wall, "server_cpu_pct": 100 * cpu / wall,
            # no browser: 0 (a Chromium of the previous mode may still be exiting, and its CPU would count negative)
            "browser_cpu_pct": 100 * bcpu / wall if url else 0.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per timed run (default 3)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of none/home/watch per question (default 1)")
    ap.add_argument("--questions", default="q2,q3", help="comma-separated: q2,q3")
    ap.add_argument("--watcher", choices=("auto", "poll"), default=None,
                    help="override the served file watcher (to measure the old default, 'auto'); off by default")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"Chromium not found at {CHROMIUM} (bash lab.sh test installs it as root)")

    tmp = Path(tempfile.mkdtemp(prefix="arlab-overhead-"))
    runs, log = tmp / "runs", tmp / "server.log"
    os.environ["ARLAB_RUNS_DIR"] = str(runs)
    from core.lab import store as RunStore

    # --watcher: only to measure the old default: Streamlit reads this variable over the project's config file
    app = App(runs, log, env={"STREAMLIT_SERVER_FILE_WATCHER_TYPE": args.watcher} if args.watcher else None)
    store = RunStore(runs)
    results = {}
    try:
        for qname in args.questions.split(","):
            case = CASES[qname]
            for r in range(args.repeats):
                for mode in ("none", "home", "watch"):
                    url = None if mode == "none" else app.url + ("" if mode == "home" else case[4])
                    res = timed_run(store, case, args.epochs, app.proc.pid, url)
                    results.setdefault(qname, {}).setdefault(mode, []).append(res)
                    print(f"{qname} {mode:5s} round {r + 1}: epochs {', '.join(f'{s:.2f}' for s in res['epoch_seconds'])} s"
                          f" (median {res['median_epoch_s']:.2f} s), server CPU {res['server_cpu_pct']:.1f}% of a core, "
                          f"browser {res['browser_cpu_pct']:.1f}%",
                          flush=True)
    finally:
        app.stop()
    overflow = sum("overflow" in line.lower() for line in log.read_text(errors="replace").splitlines())

    def med(q, mode):
        return statistics.median(r["median_epoch_s"] for r in results[q][mode])

    out = {}
    for q in results:
        out[f"{q}_watch_ratio"] = round(med(q, "watch") / med(q, "none"), 3)
        out[f"{q}_home_ratio"] = round(med(q, "home") / med(q, "none"), 3)
    out["server_cpu_pct"] = round(max(r["server_cpu_pct"] for q in results for r in results[q]["watch"]), 1)
    out["server_cpu_pct_home"] = round(max(r["server_cpu_pct"] for q in results for r in results[q]["home"]), 1)
    out["browser_cpu_pct_watch"] = round(max(r["browser_cpu_pct"] for q in results for r in results[q]["watch"]), 1)
    out["watcher_overflow_lines"] = overflow
    out["epochs"], out["repeats"], out["cores"] = args.epochs, args.repeats, os.cpu_count()
    out["watcher"] = args.watcher or "project config"
    print()
    print("question  none s   home s   watch s   home/none  watch/none")
    for q in results:
        print(f"{q:8s}  {med(q, 'none'):6.2f}   {med(q, 'home'):6.2f}   {med(q, 'watch'):7.2f}   "
              f"{out[f'{q}_home_ratio']:9.3f}  {out[f'{q}_watch_ratio']:10.3f}")
    print(f"server CPU while watched: {out['server_cpu_pct']}% of a core; watcher overflow lines in its log: {overflow}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
