"""Comparing runs and looking back through one: what the Runs page's compare view and a run's scrubber show.

    s = series(store, run_id)        # its losses with epochs and wall-clock seconds (the bounded view pages draw)
    recorded(store, run_id)          # the same, every point as its events file holds it, once (the CSV's)
    by_unit(entries, question_unit)  # runs grouped by the unit of their loss (one group: one chart)
    smooth(s.train, 0.9)             # exponential moving average (the compare chart's smoothing slider)
    settings_table([spec, ...])      # one row per hyperparameter, which differ
    frames(artifacts, tests)         # a run's per-epoch sample grids, in order, with the test loss at each epoch
    curve_csv(s)                     # the curve as CSV (step, epoch, seconds, train / test loss)
    continue_spec(spec, n, run_id)   # "Train N more epochs": the spec of a run that continues run_id
    chain(store, run_id, may_view)   # the runs back through init="run:..." (oldest first)
    join(parts) -> (Series, restarts) # their curves as one, epochs continuing; chained(...) does both
    epoch_offset(store, run_id)      # where the run's epoch 0 sits on that one curve; epoch_label(e, offset)

No Streamlit here; the pages draw what these return.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from .context import epoch_name, parse_epoch_name
from .viz import smooth  # noqa: F401 (compare.smooth: the pages' name for it)


@dataclass
class Series:
    run_id: str
    unit: str = ""
    steps_per_epoch: float | None = None
    train: list = field(default_factory=list)        # loss of a minibatch (or the mean of several: thinned events)
    train_epoch: list = field(default_factory=list)  # its epoch (fractional)
    train_t: list = field(default_factory=list)      # its seconds since the run started
    test: list = field(default_factory=list)         # test loss before training and after every epoch
    test_t: list = field(default_factory=list)
    train_step: list = field(default_factory=list)   # the minibatch count at each train point
    test_epoch: list = field(default_factory=list)   # the epoch of each test point, where known (else its place)


def series(store, run_id: str) -> Series:
    """A run's losses with an epoch and a wall-clock time for each (seconds since its first event)."""
    from .engine.stream import shared

    v = shared(store, run_id)   # the process's one bounded view of the run, read from where it was left
    status = store.status(run_id)
    return Series(run_id, (status.get("result") or {}).get("unit") or "", v.steps_per_epoch, list(v.train),
                  list(v.train_epoch), list(v.train_t), list(v.test), list(v.test_t), list(v.train_step))


def recorded(store, run_id: str) -> Series:
    """A run's curve as its events file holds it: every train point and test evaluation the worker wrote, with the
    step, epoch and time it recorded, each once (a point the file holds twice, same kind and step or epoch, is kept
    the first time). What the curve download writes; `series` is the bounded view the pages draw, whose train
    points are averaged in pairs once a run has many."""
    events, _ = store.events(run_id)
    status = store.status(run_id)
    s = Series(run_id, (status.get("result") or {}).get("unit") or "")
    t0 = next((ev["t"] for ev in events if isinstance(ev.get("t"), (int, float))), 0.0)
    seen = set()
    for ev in events:
        kind, t = ev.get("type"), (ev.get("t") or t0) - t0
        if kind == "start" and s.steps_per_epoch is None:
            s.steps_per_epoch = ev.get("steps_per_epoch")
        elif kind == "train" and (ev.get("step") is None or ("train", ev["step"]) not in seen):
            seen.add(("train", ev.get("step")))
            s.train.append(ev.get("loss", float("nan")))
            s.train_step.append(ev.get("step", len(s.train)))
            s.train_epoch.append(ev.get("epoch", s.train_step[-1] / (s.steps_per_epoch or 1)))
            s.train_t.append(t)
        elif kind == "test" and ("test", ev.get("epoch", len(s.test))) not in seen:
            seen.add(("test", ev.get("epoch", len(s.test))))
            s.test_epoch.append(ev.get("epoch", len(s.test)))
            s.test.append(ev.get("loss", float("nan")))
            s.test_t.append(t)
    return s


def by_unit(entries: list[dict], question_unit) -> dict[str, list[str]]:
    """Run ids grouped by the unit of their test loss: the unit a finished run recorded, else its question's
    (question_unit(question) -> unit, None when unknown). Runs compare on one chart when there is one group: Q1a
    and Q1b are both nats/dim, Q4a's reconstruction MSE is not."""
    out: dict[str, list[str]] = {}
    for e in entries:
        unit = (e["status"].get("result") or {}).get("unit") or question_unit(e["spec"].get("question", "?")) or "?"
        out.setdefault(unit, []).append(e["id"])
    return out


def settings_table(specs: list, labels: list[str]) -> tuple[list[dict], set]:
    """Rows {setting, <label>: value ...} for the data set, preset, seed and every hyperparameter of these runs,
    and the set of settings whose values differ between them."""
    keys = ["dataset", "preset", "seed"] + sorted({k for sp in specs for k in sp.hparams})
    rows, differ = [], set()
    for k in keys:
        vals = [getattr(sp, k) if k in ("dataset", "preset", "seed") else sp.hparams.get(k) for sp in specs]
        if len({repr(v) for v in vals}) > 1:
            differ.add(k)
        rows.append({"setting": k, **{lab: "—" if v is None else str(v) for lab, v in zip(labels, vals)}})
    return rows, differ


def _prefix(series: str) -> str:
    """"samples" -> "samples_epoch": a series' name as the scrubber keys it."""
    return epoch_name(series, 0)[:-1]


def frames(artifacts: list, tests: list, prefix: str = "samples_epoch") -> list[dict]:
    """A run's per-epoch image artifacts named prefix<N> (from its artifact events), in epoch order, each with the
    test loss after that epoch (tests: the test losses so far, epoch 0 first) when known:
    [{epoch, name, npy, test_loss, captions?}]. Grows while the run goes on. Names follow core.context.epoch_name
    (older runs' "preview_eNNN" count as "preview_epoch")."""
    out = {}
    for ev in artifacts:
        m = parse_epoch_name(ev.get("name", ""))
        if m and _prefix(m[0]) == prefix and ev.get("kind") == "images":
            e = m[1]
            out[e] = {"epoch": e, "name": ev["name"], "npy": ev["npy"],
                      "test_loss": tests[e] if e < len(tests) else None,
                      **({"captions": ev["captions"]} if "captions" in ev else {})}
    return [out[e] for e in sorted(out)]


def frame_prefixes(artifacts: list) -> list[str]:
    """The per-epoch image series a run keeps ("samples_epoch", Q4a's "recon_epoch", Q6's two, Q2's
    "preview_epoch", ...)."""
    found = []
    for ev in artifacts:
        m = parse_epoch_name(ev.get("name", ""))
        p = _prefix(m[0]) if m else None
        if p and ev.get("kind") == "images" and p not in found:
            found.append(p)
    return found


def guide(question: str, dataset: str, unit: str) -> dict:
    """What a live curve of this question and data set is held against, in `unit` (nothing in another unit):
    {"reference": the course's number or None, "shipped": [[epoch, test loss], ...] of the shipped model's training
    where its manifest entry kept it (core.pretrain's "history"), else [], "shipped_name": its name}."""
    from . import checkpoints
    from .questions import get

    try:
        q = get(question)
    except KeyError:
        return {"reference": None, "shipped": [], "shipped_name": ""}
    same = unit == q.unit
    entry = next((e for e in checkpoints.find(question=question, dataset=dataset)
                  if (e.get("history") or {}).get("test") and e.get("unit", q.unit) == unit), None)
    return {"reference": q.reference.get(dataset) if same else None,
            "shipped": (entry["history"]["test"] if entry else []), "shipped_name": entry["name"] if entry else ""}


def curve_csv(s: Series) -> str:
    """The curve as CSV: one row per train point (a minibatch, or the mean of the minibatches up to `step`) and per
    test evaluation (kind=test)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["kind", "step", "epoch", "seconds", f"loss ({s.unit or 'nats'})"])
    steps = s.train_step if len(s.train_step) == len(s.train) else range(1, len(s.train) + 1)
    for i, loss, ep, t in zip(steps, s.train, s.train_epoch, s.train_t):
        w.writerow(["train", i, f"{ep:.6g}", f"{t:.3f}", repr(float(loss))])
    epochs = s.test_epoch if len(s.test_epoch) == len(s.test) else range(len(s.test))
    for ep, loss, t in zip(epochs, s.test, s.test_t):
        w.writerow(["test", "", ep, f"{t:.3f}", repr(float(loss))])
    return buf.getvalue()


def board(entries: list[dict], reference=None) -> list[dict]:
    """The class board: for each question and data set, the finished run with the lowest final test loss, with its
    owner's name, how many finished runs tried, and the course's reference when there is one.
    entries: RunStore.entries(); reference(question, dataset) -> float | None."""
    best: dict[tuple, dict] = {}
    tried: dict[tuple, int] = {}
    for e in entries:
        res = e["status"].get("result") or {}
        if e["status"].get("state") != "done" or not isinstance(res.get("test_loss"), (int, float)):
            continue
        k = (e["spec"].get("question", "?"), e["spec"].get("dataset", "?"))
        tried[k] = tried.get(k, 0) + 1
        if k not in best or res["test_loss"] < best[k]["status"]["result"]["test_loss"]:
            best[k] = e
    rows = []
    for (q, ds), e in sorted(best.items()):
        res = e["status"]["result"]
        ref = reference(q, ds) if reference else None
        rows.append({"question": q, "data set": ds, "best test loss": round(float(res["test_loss"]), 4),
                     "unit": res.get("unit", ""), "by": e["spec"].get("owner_name") or "this machine",
                     "reference": ref, "vs reference": None if ref is None else round(res["test_loss"] - ref, 4),
                     "finished runs": tried[(q, ds)], "run": e["id"]})
    return rows


# ----------------------------------------------------------------------------------------------- continued runs
def continue_spec(spec, n: int, run_id: str):
    """The spec of a run that trains `run_id` (whose spec is `spec`) for `n` more epochs: same question, data set,
    settings and seed, `n` epochs, starting from its weights (init "run:ID"), preset "continue"."""
    import dataclasses

    return dataclasses.replace(spec, hparams={**spec.hparams, "epochs": int(n)}, init=f"run:{run_id}",
                               preset="continue", label=f"continues {run_id}")


def chain(store, run_id: str, may_view=None, limit: int = 100) -> list[str]:
    """The runs `run_id` continues, back through their init="run:ID" links, oldest first, ending with run_id.
    Stops at a run that started from scratch or from a shipped model, at one that is gone, and before one that
    `may_view(id)` refuses (the viewer sees only the part of the chain they may open)."""
    from .sources import run_id_of

    out, rid = [run_id], run_id
    while len(out) < limit:
        try:
            init = store.spec(rid).init or ""
        except (KeyError, OSError, ValueError, TypeError):
            break
        prev = run_id_of(init) if init.startswith("run:") else None
        if not prev or prev in out or not store.dir_exists(prev) or (may_view is not None and not may_view(prev)):
            break
        out.append(prev)
        rid = prev
    return out[::-1]


def _epochs(s: Series) -> int:
    """The epochs a run's curve covers: its test points after epoch 0."""
    return max(len(s.test) - 1, 0)


def join(parts: list) -> tuple[Series, list[int]]:
    """Curves of chained runs (oldest first) as one: run k's epoch e is at offset_k + e, offset_k the epochs the
    runs before it ran (their test points after epoch 0); train steps and seconds continue the same way. A
    continued run's epoch-0 test (its start: the loss its source ended at) is left out where the run before it has
    that point. Returns (the joined Series, named after the last run) and the restart epochs (offset_k, k >= 1)."""
    if not parts:
        return Series(""), []
    out = Series(parts[-1].run_id, next((p.unit for p in parts if p.unit), ""), parts[0].steps_per_epoch)
    restarts, offset, steps, secs = [], 0, 0, 0.0
    for k, p in enumerate(parts):
        if k:
            restarts.append(offset)
        out.train += list(p.train)
        out.train_epoch += [offset + e for e in p.train_epoch]
        out.train_t += [secs + t for t in p.train_t]
        out.train_step += [steps + s for s in p.train_step]
        skip = 1 if k and out.test else 0
        out.test += list(p.test[skip:])
        out.test_t += [secs + t for t in p.test_t[skip:]]
        out.test_epoch += [offset + e for e in range(len(p.test))][skip:]
        offset += _epochs(p)
        steps += int(max(p.train_step, default=0))
        secs += max([*p.train_t, *p.test_t], default=0.0)
    return out, restarts


def epoch_offset(store, run_id: str, may_view=None) -> int:
    """Where `run_id`'s own epoch 0 sits on the one curve `chained` draws: the epochs of the runs it continues (as
    far back as `may_view` lets the viewer see); 0 for a run that continues none."""
    return sum(_epochs(series(store, rid)) for rid in chain(store, run_id, may_view)[:-1])


def epoch_label(epoch: int, offset: int = 0) -> str:
    """A run's own epoch as its chain's curve numbers it (offset: epoch_offset): "epoch 5 (this run's 2nd)", or
    "epoch 2" for a run that continues none."""
    if not offset:
        return f"epoch {epoch}"
    nth = f"{epoch}{'th' if 10 <= epoch % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(epoch % 10, 'th')}"
    return f"epoch {epoch + offset} (this run's {nth})"


def chained(store, run_id: str, may_view=None) -> tuple[Series, list[int], list[str]]:
    """A run's curve joined with those of the runs it continues: (Series, restart epochs, the chain's run ids)."""
    ids = chain(store, run_id, may_view)
    s, restarts = join([series(store, rid) for rid in ids])
    return s, restarts, ids
