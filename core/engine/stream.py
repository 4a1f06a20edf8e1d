"""A run's events as the pages read them: one parsed, bounded view per run, shared by every reader in the process.

    v = shared(store, run_id)     # read what was appended since the last call (from the last byte offset)
    v.train, v.train_epoch, v.test, v.latest["progress"], v.of("vq"), v.artifact("samples_epoch")

Thirty learners watching one run cost one parse of its new bytes and one copy in memory, not thirty. However long
the run (or however large an events file written before events were thinned), a view holds at most POINTS train
points (neighbours are averaged, two into one, whenever it holds 2 x POINTS), at most PER_TYPE events of any other
type (every other one dropped, evenly, when it holds 2 x PER_TYPE) and the last LOGS log lines; the file is read in
chunks of CHUNK bytes. At most VIEWS views are kept (the least recently read goes first).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

POINTS = 2000
PER_TYPE = 5000
LOGS = 200
CHUNK = 8 << 20
VIEWS = 256


class EventView:
    """Everything read so far from one run's events.jsonl (see the module's docstring for the bounds)."""

    def __init__(self, run_id: str, path: Path | None = None):
        self.run_id, self.path = run_id, Path(path) if path else None   # None: nothing to read (an empty view)
        self.lock = threading.Lock()
        self.offset = 0
        self.t0: float | None = None
        self.train: list = []         # train loss points (a minibatch, or the mean of several: see "n")
        self.train_epoch: list = []   # each point's epoch (fractional)
        self.train_step: list = []    # its minibatch count
        self.train_t: list = []       # its seconds since the run's first event
        self.test: list = []          # test loss before training and after every epoch
        self.test_t: list = []
        self.steps_per_epoch: float | None = None
        self.epochs: int | None = None
        self.test_sample: int | None = None   # test examples a curve point scores, when a sample (all at the end)
        self.artifacts: list = []
        self.logs: list = []
        self.latest: dict = {}        # the last event of every type
        self.timing: list = []        # its start/test/epoch/train/progress events, thinned (_timed): core.eta's
        self._other: dict = {}

    # -- reading ----------------------------------------------------------------------------------------------------
    def refresh(self) -> "EventView":
        if self.path is None:
            return self
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    size = f.seek(0, 2)
                    if size < self.offset:          # the file was replaced: start again
                        self.__init__(self.run_id, self.path)
                    f.seek(self.offset)
                    while True:
                        chunk = f.read(CHUNK)
                        end = chunk.rfind(b"\n") + 1
                        if not end:
                            break
                        self._parse(chunk[:end])
                        self.offset += end
                        f.seek(self.offset)
            except FileNotFoundError:
                pass
        return self

    def _parse(self, data: bytes) -> None:
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue   # a line torn by a crash mid-write
            if isinstance(ev, dict):
                self._add(ev)

    def _add(self, ev: dict) -> None:
        t = ev.get("type")
        if self.t0 is None and isinstance(ev.get("t"), (int, float)):
            self.t0 = ev["t"]
        since = (ev.get("t") or self.t0 or 0.0) - (self.t0 or 0.0)
        self.latest[t] = ev
        if t in ("start", "test", "epoch", "train", "progress"):
            self._timed(ev)
        if t == "train":
            self.train.append(ev.get("loss", float("nan")))
            step = ev.get("step", len(self.train_step) + 1)
            self.train_step.append(step)
            self.train_epoch.append(ev.get("epoch", step / (self.steps_per_epoch or 1)))
            self.train_t.append(since)
            if len(self.train) >= 2 * POINTS:
                self._halve_train()
        elif t == "test":
            self.test.append(ev.get("loss", float("nan")))
            self.test_t.append(since)
        elif t == "start":
            self.steps_per_epoch, self.epochs = ev.get("steps_per_epoch"), ev.get("epochs")
            self.test_sample = ev.get("test_sample")
        elif t == "artifact":
            self.artifacts.append(ev)
            if len(self.artifacts) >= 2 * PER_TYPE:
                self.artifacts = self.artifacts[::2]
        elif t == "log":
            self.logs.append(ev.get("msg", ""))
            if len(self.logs) > 2 * LOGS:
                self.logs = self.logs[-LOGS:]
        else:
            kept = self._other.setdefault(t, [])
            kept.append(ev)
            if len(kept) >= 2 * PER_TYPE:
                self._other[t] = kept[1::2]

    def _timed(self, ev: dict) -> None:
        """Keep `ev` in `timing`, in file order; of a run of train events, or of progress events, only the first and
        the newest are kept (what core.eta needs: where a phase began and where it is now), so the list grows by a
        few events an epoch however many minibatches or sampling steps it has."""
        tl, t = self.timing, ev.get("type")
        if t in ("train", "progress") and len(tl) >= 2 and tl[-1].get("type") == t and tl[-2].get("type") == t:
            tl[-1] = ev
            return
        tl.append(ev)
        if len(tl) >= 2 * PER_TYPE:   # the newest PER_TYPE, after the last "start" (where core.eta begins reading)
            tail = tl[-PER_TYPE:]
            last_start = next((e for e in reversed(tl) if e.get("type") == "start"), None)
            self.timing = ([last_start] if last_start is not None and last_start not in tail else []) + tail

    def _halve_train(self) -> None:
        """Average neighbouring points two into one (each list is replaced, never changed under a reader)."""
        n = len(self.train) // 2 * 2
        loss = self.train
        self.train = [(loss[i] + loss[i + 1]) / 2 for i in range(0, n, 2)] + loss[n:]
        self.train_epoch = self.train_epoch[1:n:2] + self.train_epoch[n:]
        self.train_step = self.train_step[1:n:2] + self.train_step[n:]
        self.train_t = self.train_t[1:n:2] + self.train_t[n:]

    # -- what pages ask --------------------------------------------------------------------------------------------
    def of(self, type: str) -> list:
        """The kept events of another type ("vq", "vq_test", "dist", "race_times", ...), in order."""
        return self._other.get(type, [])

    def artifact(self, name_prefix: str = "", kind: str | None = None):
        """The newest artifact whose name starts with `name_prefix`."""
        for ev in reversed(self.artifacts):
            if ev.get("name", "").startswith(name_prefix) and (kind is None or ev.get("kind") == kind):
                return ev
        return None

    @property
    def steps_done(self) -> int:
        return self.train_step[-1] if self.train_step else 0


_views: OrderedDict = OrderedDict()
_views_lock = threading.Lock()


def shared(store, run_id: str) -> EventView:
    """The process's one view of this run, brought up to date (KeyError when there is no such run)."""
    path = store.dir(run_id) / "events.jsonl"
    key = (str(store.root), run_id)
    with _views_lock:
        view = _views.get(key)
        if view is None:
            view = _views[key] = EventView(run_id, path)
        _views.move_to_end(key)
        while len(_views) > VIEWS:
            _views.popitem(last=False)
    return view.refresh()

