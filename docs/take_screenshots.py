"""Screenshots of every page of the app in headless Chromium:  python -m docs.take_screenshots OUT_DIR [--train [Q]]

Starts the app as the README does (bench.server.App: `bash lab.sh app`, a free localhost port, a private runs
folder), opens every page in the navigation and saves OUT_DIR/<page>.png (full page). With --train Q (default q2a)
it first starts a quick run of question Q on its first data set and shoots Q's page while it trains (what a learner
sees while waiting); SHOT_WAIT (seconds, default 25) is how long it lets the run go first. Stops the app at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.server import CHROMIUM, App

PAGES = ["", "data_sets", "runs", "report", "q1_1d", "q2_pixelcnn", "q3_transformer", "q4_vq", "q5_poetry",
         "q6_multimodal"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--train", nargs="?", const="q2a", default=None, metavar="Q",
                    help="shoot question Q's page (default q2a) while a quick run of it trains")
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated url paths ('' = home)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="arlab-shots-"))
    runs = tmp / "runs"
    app = App(runs, tmp / "server.log")
    url = app.url
    training_page = None
    try:
        if a.train:
            os.environ["ARLAB_RUNS_DIR"] = str(runs)
            from core.lab import RunSpec, store
            from core.questions import QUESTIONS, get

            q = get(a.train)
            store(runs).submit(RunSpec(q.key, q.datasets[0], q.preset("quick"), preset="quick"))
            training_page = next(e.page for e in QUESTIONS if q.key in e.parts)[:-3]
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": int(os.environ.get("SHOT_HEIGHT", "4200"))})
            for name in a.pages.split(","):
                page.goto(f"{url}/{name}", wait_until="networkidle", timeout=120_000)
                page.get_by_text("Queue:").first.wait_for(timeout=120_000)
                time.sleep(float(os.environ.get("SHOT_WAIT", "25")) if name == training_page else 4)
                page.screenshot(path=str(out / f"{name or 'home'}.png"), full_page=True)
                print(f"wrote {out / (name or 'home')}.png", flush=True)
            browser.close()
    finally:
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
