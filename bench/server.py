"""The real app, served for the system benchmarks, the browser tests and the screenshots: the README's command
(`bash lab.sh app`, its config: localhost, no file watcher) on 127.0.0.1, a free port and a runs folder of its own.

    from bench.server import App, CHROMIUM, CHROMIUM_ARGS

    with App() as app:                       # waits until /_stcore/health answers "ok" (bounded: `timeout`)
        app.url, app.port, app.runs, app.proc.pid
    # stopped here (the whole process group: the server and the runs it started), its temporary runs folder removed

App(runs, log) uses the given runs folder (kept) and writes the server's output to `log` (default: discarded);
env= adds variables for the server (a value of None removes one it would inherit), port= takes a chosen port (one
a test must know before the start, e.g. for a sign-in redirect address), args= more Streamlit options
(`bash lab.sh app` passes them on, e.g. ["--secrets.files", PATH]). The server gets this process's environment less STREAMLIT_* and ARLAB_DEV, so
it runs with the project's own config, as a learner's would. Not a benchmark: nothing to run.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# headless Chromium as the benchmarks and tests launch it: p.chromium.launch(executable_path=CHROMIUM, args=...)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`bash lab.sh app` on a free 127.0.0.1 port with its own runs folder, started by the constructor, which returns
    once the server answers /_stcore/health (at most `timeout` seconds: the first start may install the
    requirements; RuntimeError if the server exits first, TimeoutError if it does not answer in time, the server
    stopped either way). stop() (or leaving a `with` block) stops it."""

    def __init__(self, runs: Path | str | None = None, log: Path | str | None = None, *,
                 env: dict[str, str | None] | None = None, timeout: float = 300, port: int | None = None,
                 args: list[str] = ()):
        self._tmp = None if runs is not None else Path(tempfile.mkdtemp(prefix="arlab-app-"))
        self.runs = Path(runs) if runs is not None else self._tmp / "runs"
        self.log = Path(log) if log is not None else None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_") and k != "ARLAB_DEV"}
        full_env = {**inherited, **(env or {}), "ARLAB_PORT": str(self.port), "ARLAB_RUNS_DIR": str(self.runs)}
        full_env = {k: v for k, v in full_env.items() if v is not None}
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(["bash", "lab.sh", "app", *map(str, args)], cwd=ROOT, env=full_env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log:
                out.close()   # the server holds its own copy
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited early (code {self.proc.returncode})"
                                   + (f"; see {self.log}" if self.log else ""))
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the app did not answer /_stcore/health within {timeout:.0f} s")

    def stop(self):
        """Stop the server's process group (SIGTERM, SIGKILL after 15 s); remove its temporary runs folder.
        Safe to call twice."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
            except ProcessLookupError:
                pass
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc):
        self.stop()


def chromium(playwright):
    """Headless Chromium as the benchmarks and tests launch it, from a started sync_playwright()."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
