"""The homework's deliverables: every figure under the course's file name, every final loss, the write-up.

    items = collect(out_dir, prefer="runs")      # one Item per (question, data set): figures written into out_dir
    write_summary(items, out_dir)                # summary.json: every final test loss with its unit, and sources
    write_writeup(items, out_dir)                # writeup.md and writeup.pdf, in the seed write-up's order

Where a figure comes from:
    a finished run (core.engine run folder)   its events give the train loss of every minibatch and the test loss
                                              per epoch; its saved arrays give samples, reconstructions, timings
    a shipped checkpoint (pretrained/)        samples are drawn from it here (seeded); it ships no training curve,
                                              so its train plot is listed as missing, never faked
Which figures an item has, how each is drawn, its heading and its data sets are the question's own
(core.questions: figure_names, run_figures, pretrained_figures, heading, course_datasets); the drawings are
core.figures'. This module lays out the write-up.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .reasons import pathless
from . import checkpoints, sources
from . import questions as registry
from .figures import (Figure, RunRecord, learned_dist, pairs_figure, samples_figure, text_figure,  # noqa: F401
                      timing_plot, train_plot)

N_SAMPLES = 100


def __getattr__(name: str):
    """The write-up's items, from the question registry: QUESTIONS (its order), DSETS (question -> its data sets in
    the course's order: dataset 1, dataset 2), HEADINGS (question -> its heading)."""
    if name == "QUESTIONS":
        return tuple(registry.REGISTRY)
    if name == "DSETS":
        return {k: registry.get(k).course_datasets for k in registry.REGISTRY}
    if name == "HEADINGS":
        return {k: registry.get(k).heading or k for k in registry.REGISTRY}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ReportError(ValueError):
    """A question, data set or source the report cannot use; the message says what is allowed."""


def _question(question: str):
    if question not in registry.REGISTRY:
        raise ReportError(f"unknown question {question!r} (known: {', '.join(registry.REGISTRY)})")
    return registry.get(question)


def _sets(question: str) -> tuple[str, ...]:
    return registry.get(question).course_datasets


def dataset_name(question: str, d) -> str:
    """The course's data-set number (1, 2) or one of our names -> our name, checked against the question."""
    sets = _question(question).course_datasets
    text = str(d).strip()
    if text.isdigit() and 1 <= int(text) <= len(sets):
        return sets[int(text) - 1]
    if text in sets:
        return text
    allowed = ", ".join(f"{i + 1} = {s}" for i, s in enumerate(sets))
    raise ReportError(f"{question} has no data set {d!r} (use {allowed})")


def dset_number(question: str, dataset: str) -> int:
    return registry.get(question).dset_number(dataset)


def prefix(question: str, dataset: str) -> str:
    """The course's file-name stem: q2a on shapes -> "q2_a_dset1"; q5 -> "q5_a"."""
    return registry.get(question).prefix(dataset)


def figure_names(question: str, dataset: str) -> list[str]:
    """Every file the write-up needs for this question and data set (spec: "Figures the write-up needs")."""
    return registry.get(question).figure_names(dataset)


def heading(question: str) -> str:
    return registry.get(question).heading or question


@dataclass
class Item:
    """One (question, data set) of the write-up."""
    question: str
    dataset: str
    source: str = ""                 # "run:ID" | "pretrained:NAME" | "" (nothing to report)
    test_loss: float | None = None
    unit: str = ""
    figures: dict = field(default_factory=dict)   # file name -> path
    missing: dict = field(default_factory=dict)   # file name -> why it could not be made
    extra: dict = field(default_factory=dict)     # q3c timings, q5 texts, ...


def _plt():
    from .figures import _plt as plt

    return plt()


# ----------------------------------------------------------------------------------------------- from a run
def from_run(store, run_id: str, out: Path, progress=None) -> Item:
    """The figures and final loss of a finished run, written into `out` under the course's names (the question
    says which figures and how they are drawn: its `run_figures`). progress(what): told before each figure."""
    spec, status = store.spec(run_id), store.status(run_id)
    q, ds = spec.question, spec.dataset
    if q not in registry.REGISTRY or ds not in _sets(q):
        raise ReportError(f"run {run_id} ({q} on {ds}) is not one of the write-up's items")
    question = registry.get(q)
    res = status.get("result") or {}
    item = Item(q, ds, f"run:{run_id}", res.get("test_loss"), res.get("unit") or question.unit)
    from .engine.stream import shared

    view = shared(store, run_id)
    run = RunRecord(ds, store.dir(run_id), res, list(view.train), list(view.test), item.unit, store, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in question.run_figures(run).items():
        if isinstance(fig, str):
            item.missing[name] = fig
            continue
        if progress:
            progress(f"drawing {name}")
        try:
            item.figures[name] = str(fig.draw(out / name))
        except (FileNotFoundError, KeyError, ValueError) as e:
            item.missing[name] = f"{fig.why} ({pathless(e)})"
    item.extra.update(run.extra)
    if not question.has_test_loss:
        item.test_loss, item.unit = None, ""
    return item


# ----------------------------------------------------------------------------------------------- from a checkpoint
def from_pretrained(name: str, out: Path, seed: int = 0, device: str = "cpu", progress=None) -> Item:
    """The figures a shipped checkpoint can give (samples drawn here, seeded: the question's `pretrained_figures`);
    its test loss from the manifest. progress(what): told before loading the model (and drawing its samples: the
    slow part) and before each figure."""
    entries = checkpoints.find(name=name)
    if not entries:
        raise ReportError(f"no shipped checkpoint named {name!r}")
    e = entries[0]
    q, ds = e["question"], e["dataset"]
    if q not in registry.REGISTRY or ds not in _sets(q):
        raise ReportError(f"{name} ({q} on {ds}) is not one of the write-up's items")
    question = registry.get(q)
    item = Item(q, ds, f"pretrained:{name}", e.get("test_loss"), e.get("unit") or question.unit)
    names, out = question.figure_names(ds), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if names[0].endswith("train_plot.png"):
        item.missing[names[0]] = "a shipped checkpoint carries no training curve: train a run to draw it"
    if progress:
        progress(f"loading the shipped model {name} and drawing its samples")
    model, config = sources.load(f"pretrained:{name}", device)
    drawn = question.pretrained_figures(model, config, e, seed=seed, device=device, extra=item.extra)
    if drawn is None:
        raise ReportError(f"no samples can be drawn for {q} from a checkpoint")
    for fname, draw in drawn.items():
        if progress:
            progress(f"drawing {fname}")
        item.figures[fname] = str(draw(out / fname))
    return item


# ----------------------------------------------------------------------------------------------- the whole report
def choices(question: str, dataset: str, runs_root=None, prefer: str = "runs", owner: str | None = None) -> list[str]:
    """Sources for one item, the one to use first: finished runs (lowest test loss first; a race, which has none,
    newest first), then shipped checkpoints; prefer="pretrained" puts the shipped checkpoints first, "runs-only"
    leaves them out. owner: only the runs this owner may see (None = all)."""
    kept = registry.get(question).kept_file or sources.RUN_FILE   # e.g. a race keeps timings, not a model
    runs = [f"run:{r['id']}" for r in sources.finished_runs(question, dataset, runs_root, kept, owner=owner)]
    loss = {s: sources.test_loss(s, runs_root) for s in runs}
    runs.sort(key=lambda s: (loss[s] is None, loss[s] or 0.0))   # stable: newest first among equals
    shipped = [f"pretrained:{e['name']}" for e in sources.shipped(question, dataset)]
    return {"runs": runs + shipped, "pretrained": shipped + runs, "runs-only": runs}.get(prefer, runs + shipped)


def make_item(question: str, dataset: str, source: str, out: Path, runs_root=None, seed: int = 0,
              progress=None) -> Item:
    """The item for one (question, data set) from `source` ("run:ID" | "pretrained:NAME" | "" for none);
    progress(what) is told what it is doing (loading a model, drawing a figure)."""
    if not source:
        item = Item(question, dataset, unit="")
        item.missing = {n: "no finished run and no shipped checkpoint" for n in figure_names(question, dataset)}
        return item
    kind, name = sources.parse(source)
    if kind == "pretrained":
        item = from_pretrained(name, out, seed, progress=progress)
    else:
        from .lab import store

        item = from_run(store(runs_root), name, out, progress)
    item.missing = {n: pathless(why) for n, why in item.missing.items()}   # the page, summary.json, the write-up
    return item


def build(picks: dict, out, runs_root=None, seed: int = 0, progress=None, explain=None) -> list[Item]:
    """The write-up from one source per item (picks: {(question, data set): "run:ID" | "pretrained:NAME" | ""}): each
    item's figures, then summary.json and the write-up, into `out`; -> the items.

    progress(step, steps, what) is told before every step (an item's source: for a shipped model, its loading and
    sampling, the slow part; each of its figures; the summary; the write-up). steps counts every figure the picked
    items can have, so it never changes; an item that makes fewer skips ahead. A source that cannot be read (a
    corrupt checkpoint, a deleted run) leaves its item missing, saying why in explain(error)'s words."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = [(q, ds, src, (1 + len(figure_names(q, ds))) if src else 0) for (q, ds), src in picks.items()]
    steps, done = sum(n for *_, n in plan) + 2, 0
    tell = progress or (lambda step, steps, what: None)
    items = []
    for q, ds, src, n in plan:
        last = done + n

        def told(what, q=q, ds=ds, last=last):
            nonlocal done
            done = min(done + 1, last)
            tell(done, steps, f"{q} on {ds}: {what}")

        if src.startswith("run:"):
            told(f"reading {src}")
        try:
            items.append(make_item(q, ds, src, out, runs_root, seed, progress=told))
        except Exception as e:  # noqa: BLE001 - one unreadable source leaves its item missing, not the report
            item = make_item(q, ds, "", out, runs_root)
            item.missing = {name: f"{src} could not be read ({pathless((explain or str)(e))})"
                            for name in item.missing}
            items.append(item)
        done = last
    tell(steps - 1, steps, "writing summary.json")
    write_summary(items, out)
    tell(steps, steps, "writing the write-up (writeup.md and writeup.pdf)")
    write_writeup(items, out)
    return items


def collect(out, prefer: str = "runs", runs_root=None, seed: int = 0, questions=None, log=None,
            owner: str | None = None) -> list[Item]:
    """Every item of the write-up, each from its best source: prefer="runs" (the finished run with the lowest test
    loss, else the shipped checkpoint), "pretrained" (the reverse) or "runs-only"."""
    if prefer not in ("runs", "pretrained", "runs-only"):
        raise ReportError(f"prefer must be runs, pretrained or runs-only, not {prefer!r}")
    items = []
    for q in (tuple(registry.REGISTRY) if questions is None else questions):
        for ds in _sets(q):
            options = choices(q, ds, runs_root, prefer, owner)
            if log:
                log(f"{q} {ds}: {options[0] if options else 'nothing to report'}")
            items.append(make_item(q, ds, options[0] if options else "", out, runs_root, seed))
    return items


def reference_of(question: str, dataset: str) -> dict:
    q = registry.get(question)
    return {"reference": q.reference.get(dataset), "students": q.students.get(dataset)}


def write_summary(items: list[Item], out) -> Path:
    out = Path(out)
    summary = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "items": [
        {**{k: v for k, v in asdict(it).items() if k != "figures"}, "figures": sorted(it.figures),
         **reference_of(it.question, it.dataset)} for it in items]}
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    return path


def loss_text(it: Item) -> str:
    own = registry.get(it.question).loss_text(it)   # a question whose number is no test loss says it itself
    if own is not None:
        return own
    if it.test_loss is None or (isinstance(it.test_loss, float) and math.isnan(it.test_loss)):
        return "**FILL IN HERE** (no finished run or shipped checkpoint)"
    return f"{it.test_loss:.4f} {it.unit}"


def make_command(question: str, dataset: str) -> str:
    """The one command (in a terminal, in the lab's folder) that makes a missing item: a quick run of it (the report
    then finds it). The app's pages say make_in_app instead."""
    return f"python -m core run {question} --dataset {dset_number(question, dataset)} --preset quick"


def make_in_app(question: str, dataset: str) -> str:
    """What a learner does in the app to make a missing item: "on the Q2 · PixelCNN page, make a PixelCNN (binary)
    run on shapes with the quick preset"."""
    page = next((e.title for e in registry.QUESTIONS if question in e.parts), question)
    return f"on the {page} page, make a {registry.get(question).title} run on {dataset} with the quick preset"


def source_label(question: str, source: str, runs_root=None) -> str:
    """A source as the Report's pickers show it: its test loss in the question's unit first (what a learner
    compares; none for a question without one), then the source itself; "" -> "(leave out)"."""
    if not source:
        return "(leave out)"
    q = registry.get(question)
    loss = sources.test_loss(source, runs_root) if q.has_test_loss else None
    return source if loss is None else f"{loss:.4f} {q.unit} · {source}"


def first_page_rows(items: list[Item]) -> list[str]:
    """The PDF's first page: per item its number beside the course's reference and the students' range, and its
    source; a missing number or figure says so plainly, with the command that makes it."""
    rows = []
    for it in items:
        head = f"{it.question} · dataset {dset_number(it.question, it.dataset)} ({it.dataset}): "
        ref = reference_of(it.question, it.dataset) if registry.get(it.question).has_test_loss else {}
        refs = ([f"course's reference {ref['reference']}"] if ref.get("reference") is not None else []) + \
            ([f"students {ref['students'][0]}–{ref['students'][1]}"] if ref.get("students") else [])
        if not it.source:
            rows.append(head + " · ".join(["MISSING"] + refs) + ". No finished run and no shipped checkpoint; "
                        "make it: " + make_command(it.question, it.dataset))
            continue
        rows.append(head + " · ".join([loss_text(it).replace("**", "")] + refs) + f" · from {it.source}")
        for name, why in it.missing.items():
            rows.append(f"    missing {name}: {why}. Make it: {make_command(it.question, it.dataset)}")
    return rows


def writeup_markdown(items: list[Item]) -> str:
    """The write-up in the seed's order: per question and data set, the final test loss and its figures."""
    lines = ["# Homework 1: Autoregressive Models", "",
             "Every number below is a final test loss in the course's unit for that question; every figure was "
             "written by this lab (`python -m core report`). Sources are runs (`run:ID`) or shipped checkpoints "
             "(`pretrained:NAME`).", ""]
    last = None
    for it in items:
        if it.question != last:
            lines += [f"## {heading(it.question)}", ""]
            last = it.question
        n = dset_number(it.question, it.dataset)
        what = registry.get(it.question).measures
        lines.append(f"{what} for dataset {n} ({it.dataset}): {loss_text(it)}"
                     + (f" — source `{it.source}`" if it.source else ""))
        if not it.source:
            lines.append(f"(make it in the app: {make_in_app(it.question, it.dataset)}; or in a terminal, in the "
                         f"lab's folder: `{make_command(it.question, it.dataset)}`; then build the report again)")
        ref = reference_of(it.question, it.dataset) if registry.get(it.question).has_test_loss else {}
        if ref.get("reference") is not None:
            lines.append(f"(the course's reference: {ref['reference']})")
        if ref.get("students"):
            lines.append(f"(students reached {ref['students'][0]}–{ref['students'][1]})")
        lines.append("")
        for name in figure_names(it.question, it.dataset):
            if name in it.figures:
                lines += [f"![{name}]({name})", ""]
            else:
                lines += [f"*{name}: missing — {it.missing.get(name, 'not made')}*", ""]
    return "\n".join(lines)


def write_writeup(items: list[Item], out) -> tuple[Path, Path]:
    """writeup.md (figures linked by file name, beside it) and writeup.pdf (one page per item)."""
    out = Path(out)
    md = out / "writeup.md"
    md.write_text(writeup_markdown(items) + "\n")
    plt = _plt()
    from matplotlib.backends.backend_pdf import PdfPages

    pdf = out / "writeup.pdf"
    with PdfPages(pdf) as pages:
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.08, 0.92, "Homework 1: Autoregressive Models", fontsize=20, weight="bold")
        import textwrap

        rows = [line for row in first_page_rows(items) for line in textwrap.wrap(
            row, 124, subsequent_indent="      ", break_on_hyphens=False)]
        head = textwrap.wrap("Final test losses (course units), beside the course's reference and the range "
                             "students reached. A missing item's command (python -m core run ...) runs in a "
                             "terminal, in the lab's folder; in the app, make the same run on the question's page "
                             "(quick preset), then build the report again.", 124)
        fig.text(0.05, 0.88, "\n".join(head) + "\n\n" + "\n".join(rows), va="top", fontsize=6.5, family="monospace")
        pages.savefig(fig)
        plt.close(fig)
        for it in items:
            figs = [it.figures[n] for n in figure_names(it.question, it.dataset) if n in it.figures]
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.96, heading(it.question), fontsize=11, weight="bold")
            missing = [f"{n}: missing — {why}" for n, why in it.missing.items()]
            fig.text(0.06, 0.935, "\n".join([f"Dataset {dset_number(it.question, it.dataset)} ({it.dataset}): "
                                             f"{loss_text(it)}".replace("**", "")] + missing),
                     va="top", fontsize=8)
            for i, path in enumerate(figs[:2]):
                ax = fig.add_axes([0.06, 0.47 - 0.44 * i, 0.88, 0.42])
                ax.imshow(plt.imread(path))
                ax.axis("off")
            pages.savefig(fig)
            plt.close(fig)
    return md, pdf


def write_all(out, prefer: str = "runs", runs_root=None, seed: int = 0, log=None) -> dict:
    """collect + summary + write-up; -> {"items", "summary", "markdown", "pdf"}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = collect(out, prefer, runs_root, seed, log=log)
    md, pdf = write_writeup(items, out)
    return {"items": items, "summary": write_summary(items, out), "markdown": md, "pdf": pdf}


def zip_folder(folder, names=None) -> bytes:
    """The figures (and summary, write-up) of a report folder as zip bytes; `names` limits it to those files."""
    import io
    import zipfile

    folder, buf = Path(folder), io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.iterdir()):
            if p.is_file() and (names is None or p.name in names):
                z.write(p, p.name)
    return buf.getvalue()
