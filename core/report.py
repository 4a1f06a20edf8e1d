"""The homework's deliverables: every figure under the course's file name, every final loss, the write-up.

    items = collect(out_dir, prefer="runs")      # one Item per (question, data set): figures written into out_dir
    write_summary(items, out_dir)                # summary.json: every final test loss with its unit, and sources
    write_writeup(items, out_dir)                # writeup.md and writeup.pdf, in the seed write-up's order

Where a figure comes from:
    a finished run (core.engine run folder)   its events give the train loss of every minibatch and the test loss
                                              per epoch; its saved arrays give samples, reconstructions, timings
    a shipped checkpoint (pretrained/)        samples are drawn from it here (seeded); it ships no training curve,
                                              so its train plot is listed as missing, never faked
Figures are drawn with matplotlib (the course's own figures are matplotlib's), on the Agg backend.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoints, data, sources, viz
from .questions.q6 import PANELS as Q6_PANELS

# question -> its data sets, in the course's order (dataset 1, dataset 2)
DSETS = {"q1a": ("1d-1", "1d-2"), "q1b": ("1d-1", "1d-2"), "q2a": ("shapes", "mnist"),
         "q2b": ("shapes-colored", "mnist-colored"), "q3a": ("shapes", "mnist"),
         "q3b": ("shapes-colored", "mnist-colored"), "q3c": ("shapes-colored", "mnist-colored"),
         "q4a": ("mnist-colored", "mnist-v2"), "q4b": ("mnist-colored", "mnist-v2"), "q5": ("poetry",), "q6": ("mnist-v2",)}
QUESTIONS = tuple(DSETS)
N_SAMPLES = 100


class ReportError(ValueError):
    """A question, data set or source the report cannot use; the message says what is allowed."""


def dataset_name(question: str, d) -> str:
    """The course's data-set number (1, 2) or one of our names -> our name, checked against the question."""
    if question not in DSETS:
        raise ReportError(f"unknown question {question!r} (known: {', '.join(QUESTIONS)})")
    sets = DSETS[question]
    text = str(d).strip()
    if text.isdigit() and 1 <= int(text) <= len(sets):
        return sets[int(text) - 1]
    if text in sets:
        return text
    allowed = ", ".join(f"{i + 1} = {s}" for i, s in enumerate(sets))
    raise ReportError(f"{question} has no data set {d!r} (use {allowed})")


def dset_number(question: str, dataset: str) -> int:
    return DSETS[question].index(dataset) + 1


def prefix(question: str, dataset: str) -> str:
    """The course's file-name stem: q2a on shapes -> "q2_a_dset1"; q5 -> "q5_a"."""
    n, part = question[:2], question[2:] or "a"
    return f"{n}_{part}" if question in ("q5", "q6") else f"{n}_{part}_dset{dset_number(question, dataset)}"


def figure_names(question: str, dataset: str) -> list[str]:
    """Every file the write-up needs for this question and data set (spec: "Figures the write-up needs")."""
    p = prefix(question, dataset)
    if question in ("q1a", "q1b"):
        return [f"{p}_train_plot.png", f"{p}_learned_dist.png"]
    if question == "q3c":
        n = dset_number(question, dataset)
        return [f"q3_c_dset{n}_timing_plot.png", f"q3_c_no_cache_dset{n}_samples.png",
                f"q3_c_with_cache_dset{n}_samples.png"]
    if question == "q4a":
        return [f"{p}_samples.png"]
    if question == "q6":
        return [f"{p}_train_plot.png"] + [f"{p}_samples_{k}.png" for k in Q6_PANELS]
    return [f"{p}_train_plot.png", f"{p}_samples.png"]


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


# ----------------------------------------------------------------------------------------------- drawing
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(question: str, dataset: str, what: str) -> str:
    q = f"Q{question[1]}({question[2:] or 'a'})"
    return f"{q} {what}" if question in ("q5", "q6") else f"{q} Dataset {dset_number(question, dataset)} {what}"


def train_plot(path, train_losses, test_losses, title: str, unit: str) -> Path:
    """Train loss of every minibatch and test loss per epoch, on an epoch axis (as the course draws them)."""
    plt = _plt()
    train_losses, test_losses = np.asarray(train_losses, float), np.asarray(test_losses, float)
    epochs = max(len(test_losses) - 1, 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(np.arange(1, len(train_losses) + 1) * epochs / max(len(train_losses), 1), train_losses,
            label="train loss")
    ax.plot(np.arange(len(test_losses)), test_losses, label="test loss")
    ax.set(title=title, xlabel="Epoch", ylabel=f"NLL ({unit})")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def learned_dist(path, train_data, probs, title: str) -> Path:
    plt = _plt()
    d = len(probs)
    counts = np.bincount(np.asarray(train_data, int), minlength=d)[:d]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.bar(np.arange(d), counts / max(counts.sum(), 1), width=1.0, label="train data")
    ax.step(np.arange(d + 1) - 0.5, np.append(probs, probs[-1]), where="post", color="C1", label="learned distribution")
    ax.set(title=title, xlabel="x", ylabel="Probability")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def samples_figure(path, images, title: str, ncols: int = 10, levels: int | None = None) -> Path:
    plt = _plt()
    grid = viz.image_grid(images, ncols=ncols, levels=levels)
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * grid.shape[0] / grid.shape[1] + 0.4))
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def pairs_figure(path, images, captions, title: str) -> Path:
    """Q6's 3x3 panel: each image with its caption under it."""
    plt = _plt()
    rgb = viz.to_rgb(images, 4)
    fig, axes = plt.subplots(3, 3, figsize=(7.2, 8.0))
    for ax, img, cap in zip(axes.ravel(), list(rgb) + [None] * 9, list(captions) + [""] * 9):
        ax.axis("off")
        if img is not None:
            ax.imshow(img, interpolation="nearest")
            ax.set_title(cap, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def timing_plot(path, times_uncached, times_cached, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(np.arange(len(times_uncached)), times_uncached, label="without cache")
    ax.plot(np.arange(len(times_cached)), times_cached, label="with cache")
    ax.set(title=title, xlabel="Sampling step (token)", ylabel="Seconds per step", yscale="log")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def text_figure(path, texts, title: str) -> Path:
    import textwrap

    plt = _plt()
    body = "\n\n".join(f"{i + 1}. " + "\n    ".join(textwrap.wrap(t.replace("\n", " / "), 70) or [""])
                       for i, t in enumerate(texts))
    fig = plt.figure(figsize=(7.5, 1.2 + 0.22 * body.count("\n")))
    fig.text(0.02, 0.98, title, va="top", fontsize=12, weight="bold")
    fig.text(0.02, 0.9, body, va="top", family="monospace", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------------- from a run
def _levels(dataset: str) -> int:
    return 2 if data.image_shape(dataset)[2] == 1 else 4


def from_run(store, run_id: str, out: Path) -> Item:
    """The figures and final loss of a finished run, written into `out` under the course's names."""
    from .questions import get

    spec, status = store.spec(run_id), store.status(run_id)
    q, ds, d = spec.question, spec.dataset, store.dir(run_id)
    if q not in DSETS or ds not in DSETS[q]:
        raise ReportError(f"run {run_id} ({q} on {ds}) is not one of the write-up's items")
    res = status.get("result") or {}
    item = Item(q, ds, f"run:{run_id}", res.get("test_loss"), res.get("unit") or get(q).unit)
    from .engine.stream import shared

    view = shared(store, run_id)
    train, test = list(view.train), list(view.test)
    names, out = figure_names(q, ds), Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def put(name, draw, why):
        try:
            item.figures[name] = str(draw(out / name))
        except (FileNotFoundError, KeyError, ValueError) as e:
            item.missing[name] = f"{why} ({e})"

    if q == "q3c":
        n = dset_number(q, ds)
        t = json.loads((d / "timings.json").read_text()) if (d / "timings.json").exists() else None
        if t:
            item.extra = {"seconds_uncached": sum(t["uncached"]), "seconds_cached": sum(t["cached"]),
                          "speedup": sum(t["uncached"]) / max(sum(t["cached"]), 1e-12)}
            put(names[0], lambda p: timing_plot(p, t["uncached"], t["cached"], f"Q3(c) Dataset {n} Timing Plot"), "")
        else:
            item.missing[names[0]] = "the race has no timings (not finished)"
        for name, art in zip(names[1:], ("no_cache", "with_cache")):
            put(name, lambda p, art=art: samples_figure(p, np.load(d / f"{art}.npy"), name[:-4].replace("_", " "),
                                                         levels=_levels(ds)), "no samples saved")
        item.test_loss, item.unit = None, ""
        return item
    if names[0].endswith("train_plot.png"):
        if train and test:
            put(names[0], lambda p: train_plot(p, train, test, _title(q, ds, "Train Plot"), item.unit), "")
        else:
            item.missing[names[0]] = "the run recorded no losses"
    if q in ("q1a", "q1b"):
        probs = res.get("probs")
        if probs:
            train_data, _ = data.load(ds)
            put(names[1], lambda p: learned_dist(p, train_data, probs, _title(q, ds, "Learned Distribution")), "")
        else:
            item.missing[names[1]] = "the run has no learned distribution (not finished)"
    elif q == "q6":
        arts = {e["name"]: e for e in events if e["type"] == "artifact"}
        for name, panel in zip(names[1:], Q6_PANELS):
            put(name, lambda p, panel=panel: pairs_figure(p, np.load(d / f"samples_{panel}.npy"),
                                                          arts[f"samples_{panel}"]["captions"],
                                                          _title(q, ds, f"Samples ({panel.replace('_', ' ')})")),
                "no final samples saved")
    elif q == "q5":
        texts = res.get("samples")
        if texts:
            item.extra["samples"] = texts
            put(names[1], lambda p: text_figure(p, texts, "Q5(a) Samples"), "")
        else:
            item.missing[names[1]] = "the run wrote no final samples"
    else:
        art = "reconstructions" if q == "q4a" else "samples"
        put(names[-1], lambda p: samples_figure(p, np.load(d / f"{art}.npy"), _title(q, ds, "Samples"),
                                                levels=4 if q.startswith("q4") else _levels(ds)),
            f"no {art} saved")
    return item


# ----------------------------------------------------------------------------------------------- from a checkpoint
def from_pretrained(name: str, out: Path, seed: int = 0, device: str = "cpu") -> Item:
    """The figures a shipped checkpoint can give (samples drawn here, seeded); its test loss from the manifest."""
    entries = checkpoints.find(name=name)
    if not entries:
        raise ReportError(f"no shipped checkpoint named {name!r}")
    e = entries[0]
    q, ds = e["question"], e["dataset"]
    if q not in DSETS or ds not in DSETS[q]:
        raise ReportError(f"{name} ({q} on {ds}) is not one of the write-up's items")
    from .questions import get

    item = Item(q, ds, f"pretrained:{name}", e.get("test_loss"), e.get("unit") or get(q).unit)
    names, out = figure_names(q, ds), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if names[0].endswith("train_plot.png"):
        item.missing[names[0]] = "a shipped checkpoint carries no training curve: train a run to draw it"
    model, config = sources.load(f"pretrained:{name}", device)
    title = _title(q, ds, "Samples")
    if q in ("q2a", "q2b"):
        imgs = get(q).final_samples(model, data.image_shape(ds), seed)
    elif q in ("q3a", "q3b"):
        from .questions import q3

        imgs = q3.generate(model, config, N_SAMPLES, seed=seed)
    elif q == "q4a":
        from .models.vqvae import VQTokenizer
        from .questions import q4

        tok = VQTokenizer(model)
        shown = data.load(ds, version=e.get("data_version"))[1][:50]  # the images it was trained on
        imgs = q4.pairs(shown, q4.to_images(tok.decode(tok.quantize(shown))))
    elif q == "q4b":
        from .questions import q4

        imgs, _ = q4.sample_images(model, q4.load_tokenizer(config["tokenizer"], device), N_SAMPLES, seed)
    elif q == "q5":
        from .questions import q5

        texts, _ = q5.generate(model, q5.tokenizer_from_config(config), q5.N_FINAL, q5.FINAL_LEN, seed=seed)
        item.extra["samples"] = texts
        item.figures[names[1]] = str(text_figure(out / names[1], texts, "Q5(a) Samples"))
        return item
    elif q == "q6":
        from .questions import q4, q6
        from .questions.base import Trained

        tok = q4.load_tokenizer(config["tokenizer"], device)
        _, test, _, test_caps = data.load(ds)
        trained = Trained(model, config, None, {"vocab": q6.vocab_from_config(config)})
        for name, (panel, (imgs, caps)) in zip(names[1:], get(q).panels(trained, tok, test, test_caps, seed=seed).items()):
            item.figures[name] = str(pairs_figure(out / name, imgs, caps,
                                                  _title(q, ds, f"Samples ({panel.replace('_', ' ')})")))
        return item
    else:
        raise ReportError(f"no samples can be drawn for {q} from a checkpoint")
    levels = 4 if q.startswith("q4") else _levels(ds)
    item.figures[names[-1]] = str(samples_figure(out / names[-1], imgs, title, levels=levels))
    return item


# ----------------------------------------------------------------------------------------------- the whole report
def choices(question: str, dataset: str, runs_root=None, prefer: str = "runs", owner: str | None = None) -> list[str]:
    """Sources for one item, the one to use first: finished runs (lowest test loss first; a race, which has none,
    newest first), then shipped checkpoints; prefer="pretrained" puts the shipped checkpoints first, "runs-only"
    leaves them out. owner: only the runs this owner may see (None = all)."""
    kept = "timings.json" if question == "q3c" else sources.RUN_FILE   # a race keeps timings, not a model
    runs = [f"run:{r['id']}" for r in sources.finished_runs(question, dataset, runs_root, kept, owner=owner)]
    loss = {s: sources.test_loss(s, runs_root) for s in runs}
    runs.sort(key=lambda s: (loss[s] is None, loss[s] or 0.0))   # stable: newest first among equals
    shipped = [f"pretrained:{e['name']}" for e in sources.shipped(question, dataset)]
    return {"runs": runs + shipped, "pretrained": shipped + runs, "runs-only": runs}.get(prefer, runs + shipped)


def make_item(question: str, dataset: str, source: str, out: Path, runs_root=None, seed: int = 0) -> Item:
    """The item for one (question, data set) from `source` ("run:ID" | "pretrained:NAME" | "" for none)."""
    if not source:
        item = Item(question, dataset, unit="")
        item.missing = {n: "no finished run and no shipped checkpoint" for n in figure_names(question, dataset)}
        return item
    kind, name = sources.parse(source)
    if kind == "pretrained":
        return from_pretrained(name, out, seed)
    from .lab import store

    return from_run(store(runs_root), name, out)


def collect(out, prefer: str = "runs", runs_root=None, seed: int = 0, questions=QUESTIONS, log=None,
            owner: str | None = None) -> list[Item]:
    """Every item of the write-up, each from its best source: prefer="runs" (the finished run with the lowest test
    loss, else the shipped checkpoint), "pretrained" (the reverse) or "runs-only"."""
    if prefer not in ("runs", "pretrained", "runs-only"):
        raise ReportError(f"prefer must be runs, pretrained or runs-only, not {prefer!r}")
    items = []
    for q in questions:
        for ds in DSETS[q]:
            options = choices(q, ds, runs_root, prefer, owner)
            if log:
                log(f"{q} {ds}: {options[0] if options else 'nothing to report'}")
            items.append(make_item(q, ds, options[0] if options else "", out, runs_root, seed))
    return items


def reference_of(question: str, dataset: str) -> dict:
    from .questions import get

    q = get(question)
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
    if it.question == "q3c":
        s = it.extra
        return (f"{s['seconds_uncached']:.2f} s without the cache, {s['seconds_cached']:.2f} s with it "
                f"({s['speedup']:.1f}x)") if s else "**not measured yet**"
    if it.test_loss is None or (isinstance(it.test_loss, float) and math.isnan(it.test_loss)):
        return "**FILL IN HERE** (no finished run or shipped checkpoint)"
    return f"{it.test_loss:.4f} {it.unit}"


def make_command(question: str, dataset: str) -> str:
    """The one command that makes a missing item: a quick run of it (the report then finds it)."""
    return f"python -m core run {question} --dataset {dset_number(question, dataset)} --preset quick"


def first_page_rows(items: list[Item]) -> list[str]:
    """The PDF's first page: per item its number beside the course's reference and the students' range, and its
    source; a missing number or figure says so plainly, with the command that makes it."""
    rows = []
    for it in items:
        head = f"{it.question} · dataset {dset_number(it.question, it.dataset)} ({it.dataset}): "
        ref = reference_of(it.question, it.dataset) if it.question != "q3c" else {}
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


HEADINGS = {"q1a": "Question 1: 1D Data — (a) Fitting a Histogram",
            "q1b": "Question 1: 1D Data — (b) Fitting Discretized Mixture of Logistics",
            "q2a": "Question 2: PixelCNNs — (a) PixelCNNs on Shapes and MNIST",
            "q2b": "Question 2: PixelCNNs — (b) PixelCNNs on Colored Shapes and MNIST: Independent Color Channels",
            "q3a": "Question 3: Causal Transformer — (a) iGPT on Shapes and MNIST",
            "q3b": "Question 3: Causal Transformer — (b) iGPT on Colored Shapes and MNIST",
            "q3c": "Question 3: Causal Transformer — (c) K, V Caching for Improved Inference",
            "q4a": "Question 4: Causal Transformer on Latent Space — (a) VQ-VAE reconstructions",
            "q4b": "Question 4: Causal Transformer on Latent Space — (b) Transformer on VQ tokens",
            "q5": "Question 5: Causal Transformer on Text — (a) Poetry",
            "q6": "Question 6: Causal Transformer — Multimodal — (a) Text and Image Generation"}


def writeup_markdown(items: list[Item]) -> str:
    """The write-up in the seed's order: per question and data set, the final test loss and its figures."""
    lines = ["# Homework 1: Autoregressive Models", "",
             "Every number below is a final test loss in the course's unit for that question; every figure was "
             "written by this lab (`python -m core report`). Sources are runs (`run:ID`) or shipped checkpoints "
             "(`pretrained:NAME`).", ""]
    last = None
    for it in items:
        if it.question != last:
            lines += [f"## {HEADINGS.get(it.question, it.question)}", ""]
            last = it.question
        n = dset_number(it.question, it.dataset)
        what = "Final test loss" if it.question != "q3c" else "Sampling time"
        lines.append(f"{what} for dataset {n} ({it.dataset}): {loss_text(it)}"
                     + (f" — source `{it.source}`" if it.source else ""))
        if not it.source:
            lines.append(f"(make it: `{make_command(it.question, it.dataset)}`, then build the report again)")
        ref = reference_of(it.question, it.dataset) if it.question != "q3c" else {}
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
        fig.text(0.05, 0.88, "Final test losses (course units), beside the course's reference and the range "
                 "students reached\n\n" + "\n".join(rows), va="top", fontsize=6.5, family="monospace")
        pages.savefig(fig)
        plt.close(fig)
        for it in items:
            figs = [it.figures[n] for n in figure_names(it.question, it.dataset) if n in it.figures]
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.96, HEADINGS.get(it.question, it.question), fontsize=11, weight="bold")
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
