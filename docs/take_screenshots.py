"""Screenshots of every page of the app in headless Chromium:  python docs/take_screenshots.py OUT_DIR [--train]

Starts the app as the README does (`bash lab.sh app`, a free localhost port, a private runs folder), opens every
page in the navigation and saves OUT_DIR/<page>.png (full page). With --train it first starts a quick Q2 run on
shapes and shoots the Q2 page while it trains (what a learner sees while waiting). Stops the app at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ["", "data_sets", "runs", "report", "q1_1d", "q2_pixelcnn", "q3_transformer", "q4_vq", "q5_poetry"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--train", action="store_true", help="shoot the Q2 page while a quick run trains")
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated url paths ('' = home)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="arlab-shots-"))
    runs = tmp / "runs"
    from app_overhead import App   # starts `bash lab.sh app` on a free port and waits for it (bench/)

    app = App(runs, tmp / "server.log")
    url = app.url
    try:
        if a.train:
            os.environ["ARLAB_RUNS_DIR"] = str(runs)
            from core.lab import RunSpec, store
            from core.questions import get

            store(runs).submit(RunSpec("q2a", "shapes", get("q2a").preset("quick"), preset="quick"))
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": int(os.environ.get("SHOT_HEIGHT", "4200"))})
            for name in a.pages.split(","):
                page.goto(f"{url}/{name}", wait_until="networkidle", timeout=120_000)
                page.get_by_text("Queue:").first.wait_for(timeout=120_000)
                time.sleep(25 if (a.train and name == "q2_pixelcnn") else 4)
                page.screenshot(path=str(out / f"{name or 'home'}.png"), full_page=True)
                print(f"wrote {out / (name or 'home')}.png", flush=True)
            browser.close()
    finally:
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
