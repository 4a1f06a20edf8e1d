"""A class experiment: one setting varied across the class, every run on one chart (no Streamlit here).

    exp = experiment.design(store, "q1b", "1d-1", "quick", "lr", lo=1e-3, hi=1.0, count=30, scale="log")
    experiment.start(store, exp, slots=2)          # instructor: refused (ExperimentError) if it cannot finish in time
    value = experiment.join(store, owner, name)     # a learner: their value, dealt in turn (or picked: deal="pick")
    run_id = experiment.train(store, owner, submit) # their run, through the usual submit (owner, caps, ceilings)
    data = experiment.chart(store, instructor=True) # curves by value, final test loss per value, counts, CSV

On disk, in the runs folder: `.experiment/design.json` (what it varies; written only by an instructor's call: the
page checks who asks) and `.experiment/joined.json` (who joined, the value each was dealt, their runs), replaced
atomically under the experiment's lock. Each run is a normal run of its learner: the same preset and seed for
everyone, only the one setting differs; the chart reads the shared bounded event view of each (engine.stream).
"""
from __future__ import annotations

import csv
import fcntl
import io
import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import questions
from .engine import RunSpec, read_json, stream, write_json_atomic

DIR = ".experiment"
LIMIT_S = 300.0          # the instructor's default: an experiment must drain within 5 minutes
MAX_VALUES = 60
SCALES = ("list", "linear", "log")
DEALS = ("turn", "pick")


class ExperimentError(ValueError):
    """A design or a request refused, with the reason in words."""


@dataclass
class Design:
    question: str
    dataset: str
    preset: str
    setting: str                       # the one field varied
    values: list = field(default_factory=list)
    scale: str = "list"                # how the values were made (log: the chart's x axis is logarithmic)
    deal: str = "turn"                 # turn: dealt in turn to learners as they join; pick: each picks one
    seed: int = 0                      # the same for every run: only the setting differs
    limit_s: float = LIMIT_S
    title: str = ""
    started: float | None = None       # when the instructor opened it to the class (None: a draft)
    expected_s: float | None = None

    @property
    def log_x(self) -> bool:
        return self.scale == "log"


def make_values(f, lo=None, hi=None, count=None, scale="list", values=None) -> list:
    """The values of a design for the question's Field `f`: a list, or `count` values from lo to hi spaced evenly
    (linear) or by a constant ratio (log); each checked against the Field's bounds (ExperimentError naming it)."""
    if scale not in SCALES:
        raise ExperimentError(f"the scale is one of {', '.join(SCALES)}")
    if f.kind not in ("int", "float"):
        if scale != "list":
            raise ExperimentError(f"{f.title} is not a number: list its values")
    if scale == "list":
        raw = list(values or [])
    else:
        try:
            lo, hi, count = float(lo), float(hi), int(count)
        except (TypeError, ValueError):
            raise ExperimentError("a range needs a lowest value, a highest value and a count") from None
        if not 2 <= count <= MAX_VALUES:
            raise ExperimentError(f"a range has 2 to {MAX_VALUES} values")
        if not lo < hi:
            raise ExperimentError("the lowest value must be below the highest")
        if scale == "log" and lo <= 0:
            raise ExperimentError("a log scale needs values above 0")
        if scale == "log":
            raw = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (count - 1)) for i in range(count)]
        else:
            raw = [lo + i * (hi - lo) / (count - 1) for i in range(count)]
        raw = [round(v) if f.kind == "int" else float(f"{v:.4g}") for v in raw]
    out = []
    for v in raw:
        try:
            v = f.parse(v)
        except ValueError as e:
            raise ExperimentError(f"{f.title} = {v}: {e}") from None
        if v not in out:
            out.append(v)
    if not 1 <= len(out) <= MAX_VALUES:
        raise ExperimentError(f"an experiment has 1 to {MAX_VALUES} different values")
    return out


def design(question, dataset, preset, setting, *, values=None, lo=None, hi=None, count=None, scale="list",
           deal="turn", limit_s=LIMIT_S, title="") -> Design:
    """A checked design (ExperimentError with the reason): the question's data set, preset and field exist, every
    value is one the field accepts, and a run with each validates as a learner's would."""
    try:
        q = questions.get(question)
    except KeyError as e:
        raise ExperimentError(str(e.args[0])) from None
    if dataset not in q.datasets:
        raise ExperimentError(f"{dataset} is not a data set of {question} (use {', '.join(q.datasets)})")
    if preset not in q.presets:
        raise ExperimentError(f"{question} has no preset {preset} (use {', '.join(q.presets)})")
    f = next((f for f in q.fields if f.name == setting), None)
    if f is None:
        raise ExperimentError(f"{question} has no setting {setting}")
    if deal not in DEALS:
        raise ExperimentError("values are dealt in turn or picked")
    d = Design(question, dataset, preset, setting, make_values(f, lo, hi, count, scale, values), scale, deal,
               limit_s=float(limit_s), title=str(title)[:80])
    for v in d.values:
        try:
            questions.validate(question, dataset, hparams(d, v))
        except ValueError as e:
            raise ExperimentError(f"{f.title} = {v}: {e}") from None
    return d


def hparams(d: Design, value) -> dict:
    return {**questions.get(d.question).hparams(None, d.preset), d.setting: value}


# ---------------------------------------------------------------------------------------------- sized to finish
def expected_drain_s(n_runs: int, slots: int, run_s: float) -> float:
    """Seconds until `n_runs` runs of `run_s` each have ended on `slots` slots (all submitted at once)."""
    return math.ceil(n_runs / max(1, slots)) * run_s


def run_seconds(store, d: Design) -> float | None:
    """A run's measured time: the median of the recent finished runs of this question and preset (the store's),
    else the question's measured quick time (quick preset), else None."""
    typical = store.typical_seconds({"question": d.question, "preset": d.preset})
    if typical:
        return typical
    if d.preset == "quick":
        q = questions.get(d.question).quick_seconds
        return q.get(d.dataset, q.get(None))
    return None


def sized(store, d: Design, slots: int, learners: int | None = None) -> float:
    """The expected drain time of one run per value (or per learner, when more joined); ExperimentError with the
    reason when it is over the instructor's limit or cannot be known."""
    run_s = run_seconds(store, d)
    if not run_s:
        raise ExperimentError(f"no {d.question} {d.preset} run has finished on this server yet, so how long the "
                              "experiment takes is unknown: train one run first")
    n = max(len(d.values), learners or 0)
    s = expected_drain_s(n, slots, run_s)
    if s > d.limit_s:
        raise ExperimentError(f"{n} runs of about {run_s:.0f} s each on {slots} slot{'s' * (slots > 1)} take about "
                              f"{s / 60:.1f} min, over the limit of {d.limit_s / 60:.0f} min: use fewer values, a "
                              "smaller preset, or a longer limit")
    return s


# ---------------------------------------------------------------------------------------------- state on disk
def _dir(store) -> Path:
    return Path(store.root) / DIR


@contextmanager
def _lock(store):
    _dir(store).mkdir(parents=True, exist_ok=True)
    with open(_dir(store) / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def current(store) -> Design | None:
    raw = read_json(_dir(store) / "design.json", None)
    if not isinstance(raw, dict):
        return None
    try:
        return Design(**{k: raw[k] for k in Design.__dataclass_fields__ if k in raw})
    except TypeError:
        return None


def joined(store) -> dict:
    """{owner: {"name", "value", "runs": [ids]}} of the open experiment."""
    raw = read_json(_dir(store) / "joined.json", {})
    return raw if isinstance(raw, dict) else {}


def start(store, d: Design, slots: int, instructor: bool) -> Design:
    """Open `d` to the class (a new experiment: nobody joined yet), after sizing it. Instructors only."""
    if not instructor:
        raise ExperimentError("only an instructor can start an experiment")
    d.expected_s = sized(store, d, slots)
    d.started = time.time()
    with _lock(store):
        write_json_atomic(_dir(store) / "design.json", asdict(d))
        write_json_atomic(_dir(store) / "joined.json", {})
    return d


def stop(store, instructor: bool) -> None:
    """Close the experiment (its runs stay, as every run does). Instructors only."""
    if not instructor:
        raise ExperimentError("only an instructor can end an experiment")
    with _lock(store):
        (_dir(store) / "design.json").unlink(missing_ok=True)


def join(store, owner: str, name: str = "", pick=None):
    """The learner's value: dealt in turn (the next value after the last one dealt, round the list again when all
    are taken), or the one they pick (deal="pick", until they train). Joining twice keeps the first value."""
    d = current(store)
    if d is None:
        raise ExperimentError("no experiment is open")
    if not owner:
        raise ExperimentError("this page does not know who you are: reload it")
    with _lock(store):
        people = joined(store)
        me = people.get(owner)
        if d.deal == "pick" and pick is not None and not (me and me["runs"]):
            if pick not in d.values:
                raise ExperimentError(f"pick one of the experiment's values: {', '.join(map(str, d.values))}")
            me = {"name": name, "value": pick, "runs": []}
        elif me is None:
            if d.deal == "pick":
                return None   # they have not picked yet
            me = {"name": name, "value": d.values[len(people) % len(d.values)], "runs": []}
        else:
            return me["value"]
        people[owner] = me
        write_json_atomic(_dir(store) / "joined.json", people)
    return me["value"]


def train(store, owner: str, submit) -> str:
    """Submit the learner's run of their value through `submit(RunSpec)` (the usual one: it sets the owner and
    applies the caps and ceilings) and note it; ExperimentError when they have not joined, or already trained."""
    d = current(store)
    if d is None:
        raise ExperimentError("no experiment is open")
    me = joined(store).get(owner)
    if not me:
        raise ExperimentError("join the experiment first: it deals you your value")
    if me["runs"]:
        states = [store.status(r).get("state") for r in me["runs"] if store.dir_exists(r)]
        if any(s in ("queued", "running", "done") for s in states):
            raise ExperimentError("your run of this experiment is already in")
    spec = RunSpec(d.question, d.dataset, hparams(d, me["value"]), seed=d.seed, preset=d.preset,
                   label=f"experiment: {d.setting} = {me['value']}"[:100], owner=owner, owner_name=me["name"])
    rid = submit(spec)
    with _lock(store):
        people = joined(store)
        people.setdefault(owner, me)["runs"].append(rid)
        write_json_atomic(_dir(store) / "joined.json", people)
    return rid


# ---------------------------------------------------------------------------------------------- the class chart
def chart(store, instructor: bool = False) -> dict:
    """What the class chart draws, from the runs of the learners who joined (each run's shared event view):
        curves   [{"value", "x": epochs, "y": test losses, "state", "name" (instructor only)}]
        points   [{"value", "loss": final test loss, "name"}] of the runs that are done
        medians  [{"value", "loss"}] the median final loss per value, by value
        counts   {"done", "running", "waiting", "failed", "not trained"}
        reference  the course's final test loss on this data set (None if it gives none)."""
    d = current(store)
    if d is None:
        return {}
    curves, points = [], []
    counts = {"done": 0, "running": 0, "waiting": 0, "failed": 0, "not trained": 0}
    for owner, me in joined(store).items():
        rids = [r for r in me.get("runs", []) if store.dir_exists(r)]
        if not rids:
            counts["not trained"] += 1
        for rid in rids:
            state = store.status(rid).get("state")
            counts[{"queued": "waiting", "cancelled": "failed"}.get(state, state)] += 1
            view = stream.shared(store, rid)
            name = (me.get("name") or "") if instructor else ""
            curves.append({"value": me["value"], "x": list(range(len(view.test))), "y": list(view.test),
                           "state": state, "name": name})
            if state == "done" and view.test:
                points.append({"value": me["value"], "loss": float(view.test[-1]), "name": name})
    by_value: dict = {}
    for p in points:
        by_value.setdefault(p["value"], []).append(p["loss"])
    medians = [{"value": v, "loss": statistics.median(ls)} for v, ls in sorted(by_value.items())]
    q = questions.get(d.question)
    return {"design": d, "curves": sorted(curves, key=lambda c: c["value"]), "points": points, "medians": medians,
            "counts": counts, "reference": q.reference.get(d.dataset), "unit": q.unit}


def csv_text(data: dict, instructor: bool = False) -> str:
    """The chart's table: one row per finished run (value, final test loss; the learner's name for instructors)."""
    d = data.get("design")
    out = io.StringIO()
    w = csv.writer(out)
    unit = data.get("unit", "")
    w.writerow([d.setting if d else "value", f"final test loss ({unit})"] + (["learner"] if instructor else []))
    for p in sorted(data.get("points", []), key=lambda p: p["value"]):
        w.writerow([p["value"], f"{p['loss']:.6g}"] + ([p["name"]] if instructor else []))
    return out.getvalue()
