"""A class of N learners on one server:
    python -m bench.system.classroom [--clients browser|script] [--learners 30] [--doubles 5] [--arrive 5]
                                     [--minutes 12] [--hostile 0|1|2] [--run-budget 300]

Starts the real app as the README does (bench.server.App: `bash lab.sh app`, a free localhost port, a private runs
folder), then N simulated learners arriving within --arrive seconds, each a separate headless Chromium context (its
own cookies: its own identity) with one tab: open the Q1 page, give a name, pick the Histogram's quick preset, press
Train (the first --doubles press it twice), go to Home. Then, until their runs have ended or the time is up, each
comes back to the Q1 page every ~--every seconds (a click in the navigation), notes the run's state and, while it
waits, that its place in the queue shows, and goes back to Home; at the end, one reload (a new session that must
find the learner's own run through the browser's cookie). --clients script runs the same learners as Streamlit
script sessions (AppTest) in threads of this process, beside the real server: the server's side of each page without
a browser drawing it (on a 2-core machine thirty Chromium tabs take the CPU the server would answer with).

Page time: from asking for a page (or pressing a button) to the answer being on screen. p95_page_s and max_page_s are
over the pages asked for while the queue drains (every page after a learner's arrival: coming back, reloads); the
arrival burst itself (thirty first opens, names and Train presses within five seconds) is arrival_p95_s and
arrival_max_s. At the end, from the run
folders: runs, done, lost (a learner's run that is neither done, nor cancelled by its owner, nor still waiting with
its position shown; or a Train press that made no run), started_twice (a run whose worker started twice), fair
(no owner's first run waited while another owner's second run started). Prints one final JSON line:
    {"sessions", "runs", "done", "lost", "started_twice", "peak_rss_mb", "p95_page_s", "max_page_s", "fair", ...}
peak_rss_mb: the server process (Streamlit; in script mode also this process, where the sessions live), sampled every
0.5 s; workers are reported apart (worker_peak_rss_mb).
Bounded: every wait has a timeout, the whole class stops at --minutes, the server and Chromium are stopped at the end.

--hostile 2 (script mode only): two of the N learners misbehave, the others behave as above.
  learner 0, the racer: opens the Q3 page and presses the KV-cache race (coloured shapes, 1 sample) every ~2 s until
    the class ends (the time is up or the other learners are finished), at most 200 presses; each press either made
    a run or was refused ("Nothing was launched: ... already have 3 runs waiting ...").
  learner 1, the long runner: opens the Q1 page with the link ?dataset=1d-2 and submits the longest Q1a run the
    server allows (homework preset, 625 epochs at batch size 1: 5,000,000 minibatches, the ARLAB_MAX_STEPS ceiling),
    then tries 1000 epochs, which must be refused with the ceiling message; then watches its run until it ends.
  With --hostile 1 only the racer misbehaves.
The server then runs with the instructor's settings for such a class: ARLAB_SLOTS=2 (two runs at once on the 2
cores, one thread each: the long run may hold one slot, the class shares the other) and ARLAB_RUN_BUDGET_S=--run-budget
(300 s by default: a Q1 quick run or a one-sample race takes seconds, so only a careless run ever meets it, and the
long run is stopped by its budget within the class instead of holding its slot for the default hour). done, lost,
started_twice, fair and the page times are then over the other learners only (the hostile learners' runs are not
theirs to lose);
the JSON line adds hostile, slots, run_budget_s, others_done (how many of the others got all their runs done),
racer_presses / racer_runs / racer_refused, long_run_state (its state at the end, with long_run_reason and
long_run_s) and long_refused_over_ceiling, and fair_all / started_twice_all over every run, the hostile ones included.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.server import CHROMIUM, CHROMIUM_ARGS, ROOT, App

SHOTS = os.environ.get("ARLAB_SHOTS")   # a folder: screenshots of pages that did not answer
RUN_RE = re.compile(r"\d{8}-\d{6}-q1a-[0-9a-f]{6}")


def pct(sorted_values: list[float], q: float) -> float | None:
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 2) if sorted_values else None


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                    out.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


class Memory(threading.Thread):
    """Peak RSS, sampled every 0.5 s until stop: the server (and the given pids), one worker (any process running
    core.engine.worker, wherever it was started from), and the Ray processes together (with the Ray launcher)."""

    def __init__(self, *pids: int):
        super().__init__(daemon=True)
        self.pids, self.server, self.workers, self.cluster, self.running = pids, 0.0, 0.0, 0.0, True

    def run(self):
        while self.running:
            for pid in self.pids:   # lab.sh execs python: the server is the shell's pid
                self.server = max(self.server, rss_mb(pid))
            ray_total = 0.0
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                    except OSError:
                        continue
                    if b"core.engine.worker" in cmd:
                        self.workers = max(self.workers, rss_mb(int(proc.name)))
                    elif b"/ray/" in cmd or b"raylet" in cmd or b"gcs_server" in cmd:
                        ray_total += rss_mb(int(proc.name))
            self.cluster = max(self.cluster, ray_total)
            time.sleep(0.5)


class Learner:
    """One learner: one browser context (its own cookies), one tab kept open. Between visits to the Q1 page the tab
    sits on Home (as a learner reading another page would), so only the pages being looked at poll the server."""

    def __init__(self, i: int, url: str, presses: int):
        self.name, self.url, self.presses = f"learner-{i:02d}", url, presses
        self.page_s: list[tuple[str, float]] = []
        self.runs: list[str] = []
        self.errors: list[str] = []
        self.last_state, self.position_shown = {}, {}
        self.page = None
        self.arrival_n = 0   # how many of page_s were the arrival (first open ... back on Home)

    async def timed(self, what: str, coro):
        t0 = time.time()
        try:
            return await coro
        finally:
            self.page_s.append((what, time.time() - t0))   # a timeout counts with the time it took

    async def _first_open(self):
        await self.page.goto(self.url + "/q1_1d", wait_until="domcontentloaded", timeout=120_000)
        await self.page.get_by_role("button", name="Train Histogram").wait_for(timeout=120_000)

    async def start(self, browser, delay: float):
        await asyncio.sleep(delay)
        self.ctx = await browser.new_context(viewport={"width": 1200, "height": 1000})
        self.page = await self.ctx.new_page()
        try:
            await self.timed("first open", self._first_open())
            await self.timed("sign in", self._sign_in())
            await self.timed("preset", self._quick())
            for _ in range(self.presses):
                await self.timed("train", self._train(set(self.runs)))
            await self.timed("switch", self._home())
            self.arrival_n = len(self.page_s)
        except Exception:
            if SHOTS:
                await self.page.screenshot(path=f"{SHOTS}/{self.name}-start.png")
            raise

    async def _sign_in(self):
        box = self.page.get_by_role("textbox", name="Name shown on your runs")
        for attempt in range(3):   # a busy page may redraw the popover under the typing: check, and type again
            if not await box.is_visible():
                await self.page.get_by_role("button", name="Your name").click(timeout=60_000)
            await box.fill(self.name, timeout=60_000)
            if await box.input_value() == self.name:
                break
        await self.page.get_by_role("button", name="Save").click()
        await self.page.get_by_text(f"You: {self.name}").wait_for(timeout=60_000)

    async def _quick(self):
        """The Histogram's quick preset (its first preset radio)."""
        await self.page.get_by_text("quick", exact=True).first.click(timeout=60_000)
        await self.page.get_by_role("spinbutton", name="epochs").first.wait_for(timeout=60_000)
        deadline = time.time() + 30
        while await self.page.get_by_role("spinbutton", name="epochs").first.input_value() != "10" \
                and time.time() < deadline:
            await asyncio.sleep(0.2)

    async def _train(self, before):
        await self.page.get_by_role("button", name="Train Histogram").click(timeout=60_000)
        deadline = time.time() + 60
        while time.time() < deadline:
            for text in await self.page.get_by_text(RUN_RE).all_inner_texts():
                for rid in RUN_RE.findall(text):
                    if rid not in before:
                        self.runs.append(rid)
                        return
            await asyncio.sleep(0.2)
        self.errors.append("pressing Train showed no new run within 60 s")

    async def _home(self):
        await self.page.get_by_role("link", name="Home").click(timeout=60_000)
        await self.page.get_by_role("heading", name="The questions").wait_for(timeout=60_000)

    async def _status(self):
        status = self.page.get_by_text(RUN_RE).first
        await status.wait_for(timeout=60_000)
        return status

    async def check(self, reload: bool = False):
        """Come back to the Q1 page (a click in the navigation, or a reload: a new session that must find the
        learner's own run through the browser's cookie); read the run's state and, if it waits, that its place
        in the queue shows; then go back to Home."""
        try:
            if reload:
                await self.timed("reload", self._reload())
            else:
                await self.page.get_by_role("link", name="Q1 · 1-D data").click(timeout=60_000)
                await self.timed("switch", self._status())
            text = await (await self._status()).inner_text()
            rid = (RUN_RE.findall(text) or [None])[0]
            state = next((s for s in ("queued", "running", "done", "cancelled", "failed") if s in text), "?")
            self.last_state[rid] = state
            if state == "queued":
                self.position_shown[rid] = await self.page.get_by_text("waiting in the queue").count() > 0
            if not reload:
                await self.timed("switch", self._home())
        except Exception as e:  # noqa: BLE001 - a page that did not answer is a finding, not a crash
            self.errors.append(f"{'reload' if reload else 'visit'}: {type(e).__name__}")
            if SHOTS:
                await self.page.screenshot(path=f"{SHOTS}/{self.name}-{len(self.errors)}.png")

    async def _reload(self):
        await self.page.goto(self.url + "/q1_1d", wait_until="domcontentloaded", timeout=120_000)
        await self._status()


SCRIPT_LOCK = threading.RLock()


class ScriptLearner(Learner):
    """The same learner as Streamlit script sessions (AppTest) in a thread of this process: what the server does per
    page, without a browser drawing it (on this 2-core machine the browsers take most of the CPU). Its identity is
    the one the cookie would give (session state "me"); a reload is a new session with that identity. AppTest is
    not thread-safe, so one page runs at a time (as if the server had one core for scripts): a learner's page time
    includes its wait for the pages of the others."""

    def __init__(self, i, url, presses):
        super().__init__(i, url, presses)
        from ui.identity import Me

        self.me = Me(f"b:{i:016x}", self.name)

    def session(self):
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["me"] = self.me
        return at

    def timed_sync(self, what, fn):
        t0 = time.time()
        try:
            with SCRIPT_LOCK:   # AppTest is not thread-safe; the wait for it counts in the page time
                return fn()
        finally:
            self.page_s.append((what, time.time() - t0))

    def open(self):
        at = self.session()
        at.run()
        at.switch_page("pages/q1_1d.py")
        at.run()
        return at

    def start_sync(self, delay: float):
        time.sleep(delay)
        self.at = self.timed_sync("first open", self.open)
        self.timed_sync("preset", lambda: self.at.radio(key="q1a:1d-1:preset").set_value("quick").run())
        for _ in range(self.presses):
            with SCRIPT_LOCK:
                train = next(b for b in self.at.button if b.label == "Train Histogram")
            self.timed_sync("train", lambda: train.click().run())
            with SCRIPT_LOCK:
                rid = self.at.session_state["q1a:1d-1:run"] if "q1a:1d-1:run" in self.at.session_state else None
                if rid and rid not in self.runs:
                    self.runs.append(rid)
                else:
                    self.errors.append("pressing Train made no run: " + "; ".join(str(e.value) for e in self.at.error))
        self.arrival_n = len(self.page_s)

    def check_sync(self, reload: bool = False):
        try:
            if reload:
                at = self.timed_sync("reload", self.open)
            else:
                at = self.at
                self.timed_sync("switch", at.run)
            with SCRIPT_LOCK:
                text = " ".join(m.value for m in at.markdown if RUN_RE.search(m.value))
                rid = (RUN_RE.findall(text) or [None])[0]
                state = next((s for s in ("queued", "running", "done", "cancelled", "failed") if s in text), "?")
                self.last_state[rid] = state
                if state == "queued":
                    self.position_shown[rid] = any("waiting in the queue" in c.value for c in at.caption)
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"{'reload' if reload else 'visit'}: {type(e).__name__}: {e}")


class Racer(ScriptLearner):
    """Learner 0 with --hostile: presses the Q3 page's KV-cache race again and again (see the module's docstring)."""
    DATASET, PAUSE_S, MAX_PRESSES = "shapes-colored", 2.0, 200

    def __init__(self, i, url):
        super().__init__(i, url, 0)
        from ui.identity import Me

        self.name = "racer"
        self.me = Me(f"b:{i:016x}", self.name)
        self.hostile_runs: list[str] = []
        self.presses_made = self.refused = 0
        self.refusals: list[str] = []

    def open_q3(self):
        at = self.session()
        at.run()
        at.switch_page("pages/q3_transformer.py")
        at.run()
        at.radio(key="q3:race:dataset").set_value(self.DATASET).run()
        at.number_input(key="q3:race:n").set_value(1).run()
        return at

    def press(self):
        key = f"q3c:{self.DATASET}:run"
        before = self.at.session_state[key] if key in self.at.session_state else None
        self.at.button(key="q3:race:go").click().run()
        rid = self.at.session_state[key] if key in self.at.session_state else None
        self.presses_made += 1
        if rid and rid != before:
            self.hostile_runs.append(rid)
            return
        said = [str(e.value) for e in self.at.error if "Nothing was launched" in str(e.value)]
        if said:
            self.refused += 1
            if len(self.refusals) < 3:
                self.refusals.append(said[0][:160])
        else:
            self.errors.append("a race press made no run and said nothing: "
                               + "; ".join(str(e.value) for e in self.at.exception)[:160])

    def misbehave(self, delay: float, until):
        """until() -> True when the class has ended for the racer."""
        time.sleep(delay)
        self.at = self.timed_sync("racer open", self.open_q3)
        while self.presses_made < self.MAX_PRESSES and not until():
            self.timed_sync("racer press", self.press)
            time.sleep(self.PAUSE_S)


class LongRunner(ScriptLearner):
    """Learner 1 with --hostile 2: the longest Q1a run the server allows, then one over the ceiling (see the module's
    docstring)."""
    DATASET, EPOCHS, BATCH, OVER = "1d-2", 625, 1, 1000

    def __init__(self, i, url):
        super().__init__(i, url, 0)
        from ui.identity import Me

        self.name = "long-runner"
        self.me = Me(f"b:{i:016x}", self.name)
        self.hostile_runs: list[str] = []
        self.refused_over_ceiling = False
        self.refusals: list[str] = []

    def open_q1(self):
        at = self.session()
        at.run()
        at.switch_page("pages/q1_1d.py")
        at.query_params["dataset"] = self.DATASET
        at.run()
        return at

    def _train(self, epochs):
        k = f"q1a:{self.DATASET}"
        at = self.at
        at.number_input(key=f"{k}:homework:epochs").set_value(epochs)
        at.number_input(key=f"{k}:homework:batch_size").set_value(self.BATCH)
        at.run()
        before = at.session_state[f"{k}:run"] if f"{k}:run" in at.session_state else None
        at.button(key=f"{k}:train").click().run()
        rid = at.session_state[f"{k}:run"] if f"{k}:run" in at.session_state else None
        return (rid if rid and rid != before else None), [str(e.value) for e in list(at.error) + list(at.warning)]

    def misbehave(self, delay: float, t_end: float, every: float, rnd):
        from core.engine.runs import read_status

        time.sleep(delay)
        self.at = self.timed_sync("long open", self.open_q1)
        self.timed_sync("long preset",
                        lambda: self.at.radio(key=f"q1a:{self.DATASET}:preset").set_value("homework").run())
        rid, said = self.timed_sync("long train", lambda: self._train(self.EPOCHS))
        if rid:
            self.hostile_runs.append(rid)
        else:
            self.errors.append("the longest allowed run was refused: " + "; ".join(said)[:200])
        over, said = self.timed_sync("long over", lambda: self._train(self.OVER))
        if over:
            self.hostile_runs.append(over)
            self.errors.append(f"{self.OVER} epochs at batch size {self.BATCH} was accepted")
        else:
            self.refused_over_ceiling = any("ceiling" in m for m in said)
            self.refusals = [m[:200] for m in said if "ceiling" in m][:2]
        while time.time() < t_end and rid and read_status(_runs_dir() / rid).get(
                "state") in ("queued", "running"):
            time.sleep(every * rnd.uniform(0.7, 1.3))
            self.timed_sync("long visit", self.at.run)


def _runs_dir() -> Path:
    return Path(os.environ["ARLAB_RUNS_DIR"])


def script_classroom(runs_dir: Path, n: int, doubles: int, minutes: float, every: float, arrive: float,
                     hostile: int = 0) -> list[Learner]:
    """The class as script sessions in threads (see ScriptLearner; with hostile, Racer and LongRunner first)."""
    from core.engine.runs import read_status

    os.environ["ARLAB_RUNS_DIR"] = str(runs_dir)
    kinds = [Racer, LongRunner][:hostile]
    learners = [kinds[i](i, "") if i < hostile else ScriptLearner(i, "", 2 if i - hostile < doubles else 1)
                for i in range(n)]
    with SCRIPT_LOCK:
        ScriptLearner(n, "", 0).open()   # the instructor opens the page first
    rnd, t_end = random.Random(0), time.time() + minutes * 60
    others: list[threading.Thread] = []

    def class_over():
        return time.time() >= t_end or (others and not any(t.is_alive() for t in others))

    def hostile_life(lr, delay):
        try:
            if isinstance(lr, Racer):
                lr.misbehave(delay, class_over)
            else:
                lr.misbehave(delay, t_end, every, random.Random(lr.name))
        except Exception as e:  # noqa: BLE001
            lr.errors.append(f"misbehave: {type(e).__name__}: {str(e)[:200]}")

    def life(lr, delay):
        try:
            lr.start_sync(delay)
        except Exception as e:  # noqa: BLE001
            lr.errors.append(f"start: {type(e).__name__}: {e}")
            return
        time.sleep(rnd.uniform(0, every))
        while time.time() < t_end and any(read_status(runs_dir / r).get("state") in ("queued", "running")
                                          for r in lr.runs):
            lr.check_sync()
            time.sleep(every * rnd.uniform(0.7, 1.3))
        lr.check_sync(reload=True)

    threads = [threading.Thread(target=hostile_life if i < hostile else life, args=(lr, rnd.uniform(0, arrive)),
                                daemon=True) for i, lr in enumerate(learners)]
    others.extend(threads[hostile:])
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, t_end + 120 - time.time()))
    return learners


async def classroom(url: str, runs_dir: Path, n: int, doubles: int, minutes: float, every: float, arrive: float
                    ) -> list[Learner]:
    from playwright.async_api import async_playwright

    from core.engine.runs import read_status

    learners = [Learner(i, url, 2 if i < doubles else 1) for i in range(n)]
    t_end = time.time() + minutes * 60
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        warm = await browser.new_page()   # the instructor opens the page first: the server imports torch & co once
        await warm.goto(url + "/q1_1d", wait_until="domcontentloaded", timeout=240_000)
        await warm.get_by_role("button", name="Train Histogram").wait_for(timeout=240_000)
        await warm.close()
        rnd = random.Random(0)
        results = await asyncio.gather(*(lr.start(browser, rnd.uniform(0, arrive)) for lr in learners),
                                       return_exceptions=True)
        for lr, r in zip(learners, results):
            if isinstance(r, BaseException):
                lr.errors.append(f"start: {type(r).__name__}: {str(r)[:120]}")
        print(f"{sum(len(lr.runs) for lr in learners)} runs submitted by {n} learners", flush=True)

        def active():
            return [rid for lr in learners for rid in lr.runs
                    if read_status(runs_dir / rid).get("state") in ("queued", "running")]

        async def come_back(lr):
            await asyncio.sleep(rnd.uniform(0, every))
            while time.time() < t_end and any(read_status(runs_dir / r).get("state") in ("queued", "running")
                                              for r in lr.runs):
                await lr.check()
                await asyncio.sleep(every * rnd.uniform(0.7, 1.3))
            if lr.runs:
                await lr.check(reload=True)   # at the end: the run it finds after a reload
        last = 0.0

        async def report():
            nonlocal last
            while time.time() < t_end and active():
                await asyncio.sleep(5)
                if time.time() - last > 30:
                    last = time.time()
                    print(f"  {time.strftime('%H:%M:%S')} {len(active())} runs active", flush=True)
        await asyncio.gather(report(), *(come_back(lr) for lr in learners if hasattr(lr, "ctx")))
        await browser.close()
    return learners


def _fair(runs_by_owner: list[list[dict]]) -> bool:
    """No owner's first run was still waiting when another owner's second (or later) run started."""
    firsts = [(sts[0].get("created", 0), sts[0].get("started") or float("inf")) for sts in runs_by_owner if sts]
    seconds = [st.get("started") for sts in runs_by_owner for st in sts[1:] if st.get("started")]
    return not any(created < s < started for created, started in firsts for s in seconds)


def summary(learners: list[Learner], runs_dir: Path, n: int) -> dict:
    """What the run folders and the page timings say (see the module's docstring). With hostile learners (Racer,
    LongRunner) the class's figures are over the others, and the hostile learners' own are added."""
    from core.engine.runs import read_events, read_status

    hostile = [lr for lr in learners if isinstance(lr, (Racer, LongRunner))]
    learners = [lr for lr in learners if lr not in hostile]
    # ---------------------------------------------------------------------------- what the run folders say
    statuses = {lr.name: [(rid, read_status(runs_dir / rid)) for rid in lr.runs] for lr in learners}
    all_runs = [p.name for p in runs_dir.iterdir() if (p / "spec.json").exists()]
    lost = sum(lr.presses - len(lr.runs) for lr in learners)
    for lr in learners:
        for rid, st in statuses[lr.name]:
            ok = (st["state"] == "done" or (st["state"] == "cancelled" and "cancelled by" in st.get("reason", ""))
                  or (st["state"] == "queued" and lr.position_shown.get(rid)))
            lost += not ok
    others_done = sum(len(lr.runs) == lr.presses and all(st["state"] == "done" for _, st in statuses[lr.name])
                      for lr in learners)

    def twice(rid):
        return sum(1 for e in read_events(runs_dir / rid / "events.jsonl")[0]
                   if e.get("type") == "log" and str(e.get("msg", "")).startswith("worker ")) > 1
    started_twice = sum(twice(rid) for lr in learners for rid in lr.runs)
    # fair: no learner's first run was still waiting when another learner's second run started
    fair = _fair([[st for _, st in statuses[lr.name]] for lr in learners])
    extra = {}
    if hostile:
        racer = next((lr for lr in hostile if isinstance(lr, Racer)), None)
        longr = next((lr for lr in hostile if isinstance(lr, LongRunner)), None)
        hostile_st = {lr.name: [read_status(runs_dir / rid) for rid in lr.hostile_runs] for lr in hostile}
        extra = {"hostile": len(hostile), "others_done": others_done,
                 "fair_all": _fair([[st for _, st in v] for v in statuses.values()] + list(hostile_st.values())),
                 "started_twice_all": sum(twice(rid) for rid in all_runs)}
        if racer:
            rst = hostile_st[racer.name]
            extra.update({"racer_presses": racer.presses_made, "racer_runs": len(racer.hostile_runs),
                          "racer_refused": racer.refused,
                          "racer_runs_by_state": {s: sum(st.get("state") == s for st in rst)
                                                  for s in sorted({st.get("state") for st in rst})},
                          "racer_refusal": racer.refusals[0] if racer.refusals else None})
        if longr:
            st = hostile_st[longr.name][0] if longr.hostile_runs else {}
            extra.update({"long_run_state": st.get("state"), "long_run_reason": (st.get("reason") or "")[:160] or None,
                          "long_run_s": round(st["ended"] - st["started"], 1) if st.get("ended") and
                          st.get("started") else None,
                          "long_refused_over_ceiling": longr.refused_over_ceiling,
                          "long_refusal": longr.refusals[0] if longr.refusals else None})
        extra["hostile_p95_by_kind_s"] = {k: pct(sorted(t for lr in hostile for w, t in lr.page_s if w == k), 0.95)
                                          for k in sorted({w for lr in hostile for w, _ in lr.page_s})}
        extra["hostile_errors"] = [f"{lr.name}: {e}" for lr in hostile for e in lr.errors][:5]
    # while the queue drains: every page after the class has pressed Train (coming back, reloads); the arrival burst
    # (thirty first opens, names and Train presses within five seconds) is reported apart
    waits = sorted(st["began"] - st["created"] for v in statuses.values() for _, st in v
                   if st.get("began") and st.get("created"))
    first_waits = sorted(st["began"] - st["created"] for v in statuses.values() for _, st in v[:1]
                         if st.get("began") and st.get("created"))
    times = sorted(t for lr in learners for _, t in lr.page_s[lr.arrival_n:])
    p95 = pct(times, 0.95)
    burst = sorted(t for lr in learners for _, t in lr.page_s[:lr.arrival_n])
    durations = [st["ended"] - st["started"] for v in statuses.values() for _, st in v
                 if st.get("state") == "done" and st.get("started") and st.get("ended")]
    done_at = max((st.get("ended", 0) for v in statuses.values() for _, st in v), default=0)
    first = min((st.get("created", 0) for v in statuses.values() for _, st in v), default=0)
    by_kind = {}
    for lr in learners:
        for what, t in lr.page_s:
            by_kind.setdefault(what, []).append(t)
    return {"sessions": n, "runs": len(all_runs), "done": sum(st["state"] == "done" for v in statuses.values()
                                                                for _, st in v),
            "lost": lost, "started_twice": started_twice, "fair": fair,
            "p95_page_s": p95, "max_page_s": round(times[-1], 2) if times else None, "page_loads": len(times),
            "arrival_p95_s": pct(burst, 0.95), "arrival_max_s": round(burst[-1], 2) if burst else None,
            "p95_by_kind_s": {k: pct(sorted(v), 0.95) for k, v in by_kind.items()},
            "drain_s": round(done_at - first, 1) if done_at else None,
            "runs_per_min": round(60 * len(durations) / (done_at - first), 2) if done_at > first else None,
            "submit_to_start_s": {"median": pct(waits, 0.5), "p95": pct(waits, 0.95), "min": pct(waits, 0.0)},
            "first_run_submit_to_start_s": {"median": pct(first_waits, 0.5), "max": pct(first_waits, 1.0)},
            "median_run_s": round(sorted(durations)[len(durations) // 2], 1) if durations else None,
            "errors": [f"{lr.name}: {e}" for lr in learners for e in lr.errors][:10],
            "median_by_kind_s": {k: round(sorted(v)[len(v) // 2], 2) for k, v in by_kind.items()}, **extra}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--learners", type=int, default=30)
    ap.add_argument("--doubles", type=int, default=5, help="learners who press Train twice")
    ap.add_argument("--minutes", type=float, default=12.0, help="the class ends at this time, drained or not")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between a learner's visits")
    ap.add_argument("--arrive", type=float, default=5.0, help="the learners arrive within this many seconds")
    ap.add_argument("--launcher", choices=["local", "ray"], default="local",
                    help="ray: start a local Ray head (2 CPUs) and let it place the runs (ARLAB_LAUNCHER=ray)")
    ap.add_argument("--ray-nice", type=int, default=0, help="start that head under `nice -n` (0 = as is)")
    ap.add_argument("--clients", choices=["browser", "script"], default="browser",
                    help="browser: a headless Chromium context per learner; script: a Streamlit script session "
                         "(AppTest) per learner in a thread of this process, beside the real server")
    ap.add_argument("--hostile", type=int, choices=[0, 1, 2], default=0,
                    help="hostile learners among the N (script mode): 1 = the racer, 2 = the racer and the long runner")
    ap.add_argument("--run-budget", type=float, default=300.0,
                    help="with --hostile: the server's ARLAB_RUN_BUDGET_S for the class (seconds)")
    args = ap.parse_args(argv)
    if args.hostile and args.clients != "script":
        sys.exit("--hostile needs --clients script")
    if args.hostile:   # the instructor's settings for this class (see the module's docstring)
        os.environ.update({"ARLAB_SLOTS": "2", "ARLAB_RUN_BUDGET_S": f"{args.run_budget:g}"})
    if args.clients == "browser" and not Path(CHROMIUM).exists():
        sys.exit(f"Chromium is needed at {CHROMIUM} (bash lab.sh test installs it)")
    head = None
    if args.launcher == "ray":   # a local Ray head with 2 CPUs places the runs (1 CPU each)
        from core.engine.ray_launcher import LocalHead

        head = LocalHead(cpus=2, nice=args.ray_nice).start()
        os.environ.update({"ARLAB_LAUNCHER": "ray", "ARLAB_RAY_ADDRESS": head.address})
    try:
        out = run_class(args)
    finally:
        if head:
            head.stop()
    print(json.dumps(out))


def run_class(args) -> dict:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:   # the pump may still be writing
        runs = Path(tmp) / "runs"
        app = App(runs, Path(tmp) / "app.log")
        # the server; in script mode the sessions live in this process, so it is measured too
        mem = Memory(app.proc.pid, *([os.getpid()] if args.clients == "script" else []))
        mem.start()
        try:
            if args.clients == "browser":
                learners = asyncio.run(classroom(app.url, runs, args.learners, args.doubles, args.minutes, args.every,
                                                 args.arrive))
            else:
                learners = script_classroom(runs, args.learners, args.doubles, args.minutes, args.every, args.arrive,
                                            args.hostile)
            out = {"clients": args.clients, **summary(learners, runs, args.learners)}
        finally:
            mem.running = False
            app.stop()
        out["peak_rss_mb"] = round(mem.server)
        out["worker_peak_rss_mb"] = round(mem.workers)
        out["ray_peak_rss_mb"] = round(mem.cluster)
        out["launcher"] = args.launcher
        if args.hostile:
            out["slots"] = int(os.environ["ARLAB_SLOTS"])
            out["run_budget_s"] = float(os.environ["ARLAB_RUN_BUDGET_S"])
    return out


if __name__ == "__main__":
    main()
