"""How long a run has left, estimated from the epochs it has measured so far (no Streamlit here).

    left = time_left(events, now)   # seconds of training left, None before its first epoch ends
    text(left)                      # "about 4 min left"
    quick_time("q2a", "shapes")     # what a page says a quick run takes, from the question's quick_seconds (measured)

From a run's events: the last "start" (how many epochs), its untrained test ("test", epoch 0, when training
begins) and the "epoch" events after it. An epoch's cost is the wall-clock time between epoch ends, so the
samples a question draws after every epoch are counted; the time already spent in the current epoch is taken off.
Events without a time stamp fall back on the "seconds" each epoch event carries.
"""
from __future__ import annotations


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
    """A learner's words for time_left: "" when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "under a minute left" if seconds > 0 else "the last epoch is running over its estimate"
    if seconds < 3600:
        return f"about {seconds / 60:.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


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
