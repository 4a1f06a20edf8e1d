import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent   # importable: pytest.ini's pythonpath


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests, deselected by default (run with -m slow)")
    config.addinivalue_line("markers", "browser: drives the real app in headless Chromium")
    config.addinivalue_line("markers", "ray: runs on a real local Ray head (select with -m ray)")


# The files that take longest (pytest --durations on the 2-core box: each 10-100 s), in the order the test processes
# of `bash lab.sh test` take them (pytest-xdist --dist loadfile --no-loadscope-reorder: each process is handed the
# next file in this order when it is done with its own), so no long file starts last and leaves the other processes
# idle at the end; the browser file first, so its server starts before the Ray head's. Run alone, the order changes
# nothing.
LONGEST_FIRST = ("test_browser.py", "test_q4.py", "test_signin.py", "test_ray.py", "test_q3.py", "test_report.py",
                 "test_runs.py", "test_compare.py", "test_vqvae.py", "test_q1.py", "test_q6.py", "test_data.py",
                 "test_classroom.py", "test_guards.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: a file keeps its own order


def open_page(page, who=None, query=None, instructor=False, name=None, timeout=120):
    """The app (AppTest) on `page` as learner `who` (a browser token "b:<who>", shown as `name`, default `who`;
    None: a new guest), with `query` in its link; fails on any exception the page raised."""
    from streamlit.testing.v1 import AppTest

    from ui.identity import Me

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    if who:
        at.session_state["me"] = Me(f"b:{who}", name or who, instructor)
    at.run()
    at.switch_page(page)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_in_process(runs_dir, spec) -> str:
    """Submit `spec` to a store over `runs_dir` without starting a worker, then run the worker in this process (the
    one way tests make a finished run): its run id; fails, naming the worker's log, unless it ended done."""
    from core.engine import worker
    from core.lab import store

    runs = store(runs_dir)
    rid = runs.submit(spec, start=False)
    assert worker.main(str(runs.dir(rid))) == 0, (runs.dir(rid) / "worker.log").read_text()[-2000:]
    assert runs.status(rid)["state"] == "done", runs.status(rid)
    return rid


def wait_for(pred, timeout=60, what="condition", every=0.2, step=None):
    """Poll `pred()` (calling `step()` first each time, e.g. a store's pump) until it is true; fail after `timeout`
    seconds naming `what` (the one way tests wait for a run that a real worker process is running)."""
    t0 = time.time()
    while True:
        if step:
            step()
        if pred():
            return
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """A private runs/ folder, so tests never touch the user's runs. Removed after the test: a server pump a page
    started for it (ui.server.start_pump) ends when its folder is gone, so pumps do not pile up in the test process."""
    d = tmp_path / "runs"
    monkeypatch.setenv("ARLAB_RUNS_DIR", str(d))
    yield d
    shutil.rmtree(d, ignore_errors=True)
