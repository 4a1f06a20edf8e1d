"""How long a run has left, and what it is doing now, from its events (no Streamlit here).

    left = time_left(events, now)   # seconds of training left, None before its first epoch ends
    text(left)                      # "about 4 min left"
    phase(events, now)              # Phase(frac, text): what the run is doing, for the monitor's bar
    quick_time("q2a", "shapes")     # what a page says a quick run takes, from the question's quick_seconds (measured)

From a run's events: the last "start" (how many epochs), its untrained test ("test", epoch 0, when training
begins) and the "epoch" events after it. An epoch's cost is the wall-clock time between epoch ends, so the
samples a question draws after every epoch are counted; the time already spent in the current epoch is taken off.
Events without a time stamp fall back on the "seconds" each epoch event carries. Before the first epoch ends,
phase() takes the pace of the minibatches instead; after the last, the pace of the question's progress events.
"""
from __future__ import annotations

from dataclasses import dataclass


def time_left(events, now: float) -> float | None:
    """Seconds until the last epoch ends (>= 0), from the epochs measured so far; None before one has."""
    events = list(events)
    starts = [i for i, e in enumerate(events) if e.get("type") == "start"]
    if not starts:
        return None
    start = events[starts[-1]]
    after = events[starts[-1] + 1:]
    ends = [e for e in after if e.get("type") == "epoch"]
    total = start.get("epochs")
    if not ends or not total:
        return None
    done = int(ends[-1].get("epoch", len(ends)))
    if done >= total:
        return 0.0
    begin = next((e for e in after if e.get("type") == "test" and e.get("epoch") == 0), start)
    if "t" in begin and "t" in ends[-1]:
        per_epoch = (ends[-1]["t"] - begin["t"]) / done
        spent = max(0.0, now - ends[-1]["t"])
    else:
        per_epoch = sum(float(e.get("seconds", 0.0)) for e in ends) / len(ends)
        spent = 0.0
    return max(0.0, per_epoch * (total - done) - spent)


def text(seconds: float | None) -> str:
    """A learner's words for time_left: "" when unknown, and at 0 (training is over, or the estimate has run out:
    only phase() knows which, and says what the run is doing instead)."""
    if not seconds:
        return ""
    return f"{_minutes(seconds)} left"


# ------------------------------------------------------------------------------------------ what a run is doing now
PHASE_TYPES = ("start", "test", "train", "epoch", "progress")   # the events phase() reads (others are skipped)


@dataclass(frozen=True)
class Phase:
    """What a run is doing now, for the monitor's bar: frac (0..1) fills it, text says it."""
    frac: float
    text: str


def _clamp(x) -> float:
    try:
        return min(max(float(x), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.0


def _minutes(seconds: float) -> str:
    return "under a minute" if seconds < 60 else (f"about {seconds / 60:.0f} min" if seconds < 3600 else
                                                 f"about {seconds / 3600:.1f} h")


def _pace_left(after: list, total_steps: int, now: float) -> float | None:
    """Seconds of minibatches left at the pace of the minibatches so far (before any epoch has ended: from the end of
    the untrained model's test to the newest train point); None before there is a pace."""
    trains = [e for e in after if e.get("type") == "train" and "t" in e]
    begin = next((e for e in after if e.get("type") == "test" and e.get("epoch") == 0 and "t" in e), None)
    if not trains or begin is None:
        return None
    last = trains[-1]
    done = int(last.get("step", 0))
    if done <= 0 or last["t"] <= begin["t"]:
        return None
    per_step = (last["t"] - begin["t"]) / done
    return max(0.0, per_step * (total_steps - done) - max(0.0, now - last["t"]))


def _rate_left(progs: list, now: float) -> float | None:
    """Seconds left of non-minibatch work (final samples, ...) at the pace of its progress events so far."""
    timed = [p for p in progs if "t" in p]
    if len(timed) < 2:
        return None
    a, b = timed[0], timed[-1]
    fa, fb = _clamp(a.get("frac")), _clamp(b.get("frac"))
    if fb <= fa or b["t"] <= a["t"]:
        return None
    return max(0.0, (1.0 - fb) * (b["t"] - a["t"]) / (fb - fa) - max(0.0, now - b["t"]))


def phase(events, now: float, clock: bool = True) -> Phase | None:
    """What a run is doing, from its events in file order ("start", "test", "train", "epoch", "progress"; other
    types are skipped): None when it has none yet.

    Before training starts (loading, tokenizing) and in a run with no epochs (a race): its latest progress event's
    message. While training: "epoch k of N" is the epoch now running (k from 1), with its minibatches ("minibatch 7
    of 13"), the test scoring that ends an epoch, or "epoch k of N done" between epochs, and the training time
    left: from the epochs measured so far, or from the minibatches' pace before the first epoch ends. After the
    last epoch: the question's own final work as its progress events say it ("drawing 100 samples: row 7 of 20"),
    with the time left at their pace; never an estimate of epochs that are over. clock=False: no time left (a run
    that is not running)."""
    events = [e for e in events if isinstance(e, dict) and e.get("type") in PHASE_TYPES]
    starts = [i for i, e in enumerate(events) if e["type"] == "start"]
    if not starts:
        progs = [e for e in events if e["type"] == "progress"]
        return Phase(_clamp(progs[-1].get("frac")), str(progs[-1].get("msg", ""))) if progs else None
    start, after = events[starts[-1]], events[starts[-1] + 1:]
    total, spe = int(start.get("epochs") or 0), int(start.get("steps_per_epoch") or 0)
    ends = [e for e in after if e["type"] == "epoch"]
    ended = int(ends[-1].get("epoch", len(ends))) if ends else 0
    trains = [e for e in after if e["type"] == "train"]
    step = int(trains[-1].get("step", 0)) if trains else 0
    tested = {e.get("epoch") for e in after if e["type"] == "test"}
    last_mark = max((i for i, e in enumerate(after) if e["type"] in ("train", "epoch")), default=-1)
    progs = [e for e in after[last_mark + 1:] if e["type"] == "progress"]   # work after the last minibatch / epoch

    if total and ended >= total:   # training is over: the question's final work (samples, ...)
        head = f"all {total} epochs trained" if total > 1 else "its one epoch trained"
        if not progs:
            return Phase(1.0, f"{head} · finishing the run (its results, samples and model)")
        p = progs[-1]
        bits = [head, str(p.get("msg") or "finishing the run")]
        left = _rate_left(progs, now) if clock else None
        if left:
            bits.append(f"{_minutes(left)} left")
        return Phase(_clamp(p.get("frac")), " · ".join(bits))

    of = max(total, 1)
    k = min(ended + 1, of)                 # the epoch now running, from 1
    within = step - ended * spe            # its minibatches done
    if 0 not in tested and not step:
        what = f"epoch 1 of {of} · first scoring the untrained model on the test set"
    elif within <= 0 and ended:
        what = f"epoch {ended} of {of} done" + (f" · {progs[-1].get('msg')}" if progs and progs[-1].get("msg") else "")
    elif spe and within >= spe and k not in tested:
        whole = " (the whole of it, after the last epoch)" if k == of and start.get("test_sample") else ""
        what = f"epoch {k} of {of} · scoring the test set{whole}"
    else:
        what = f"epoch {k} of {of} · minibatch {max(within, 0):,} of {spe:,}" if spe else f"epoch {k} of {of}"
    frac = step / (of * spe) if spe else ended / of
    bits = [what]
    if clock:
        left, basis = time_left(events, now), "from the epochs so far"
        if left is None and not ended:
            left, basis = _pace_left(after, of * spe, now), "from the minibatches so far"
            left = left or None   # the minibatches are done (scoring): their pace says nothing more
        if left is not None:
            bits.append(f"{_minutes(left)} of training left ({basis})" if left > 0 else
                        "this epoch is taking longer than the ones before it")
    return Phase(_clamp(frac), " · ".join(bits))


# Wall-clock seconds of each quick preset end to end (data, training, per-epoch samples, final samples) through the
# worker on a 2-core CPU with nothing else running (bench/RESULTS.md), kept on each question (its `quick_seconds`,
# {data set (None: any): seconds}); the one place pages take "about N min" from. A busy machine takes several times
# longer: a Q2 quick run on shapes took 881 s on a 2-core box shared with other training, a Q6 quick run about
# 8 min; the run monitor's estimate (above) follows the real pace.
def __getattr__(name: str):
    """QUICK_SECONDS: {(question, data set or None): seconds}, gathered from the questions."""
    if name == "QUICK_SECONDS":
        from . import questions

        return {(k, ds): s for k in questions.REGISTRY for ds, s in questions.get(k).quick_seconds.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BUSY = "several times that while the machine is busy (15 min has been seen)"


def quick_time(question: str, dataset: str | None = None) -> str | None:
    """ "about 2 min on 2 idle CPU cores" for the quick preset of `question` on `dataset`; None when unmeasured."""
    from . import questions

    try:
        measured = questions.get(question).quick_seconds
    except KeyError:
        return None
    s = measured.get(dataset, measured.get(None))
    if s is None:
        return None
    return ("under a minute" if s < 60 else f"about {round(s / 60)} min") + " on 2 idle CPU cores"
