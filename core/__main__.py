"""python -m core — the homework from the command line.

COMMANDS
    run QUESTION --dataset D [--preset quick|homework] [--epochs N] [--data-fraction F]
                 [--device cpu|cuda|auto] [--out DIR] [--pretrained NAME|auto] [--seed S]
        Train one question on one data set as a background run would (same worker, same events), then write its
        figures under the course's file names into DIR. With --pretrained, load a shipped checkpoint instead of
        training and draw its samples (a checkpoint has no training curve; that figure is listed as missing).
        QUESTION: q1a q1b q2a q2b q3a q3b q3c q4a q4b q5 q6.  D: the course's data-set number (1 or 2) or one of
        our names (1d-1, shapes, mnist-colored, ...).

    all [--preset quick|homework] [--epochs N] [--data-fraction F] [--jobs K] [--device ...] [--out DIR]
        [--only Q,Q,...]
        Every question on every data set, K runs at a time (several runs share one GPU well), then the report.
        q4b and q6 use the tokenizer shipped for their data set; q3c races the model shipped for its data set.
        --data-fraction F (0 < F <= 1) trains every question that has a training-subset setting on that share
        of its training set (the test loss still uses the whole test set; the preset label says so): a smoke
        run of the whole pipeline, not numbers to hand in.

    eval-pretrained [NAME ...] [--device ...] [--tolerance T]
        Recompute each shipped checkpoint's test loss on its full test set and compare it with the manifest;
        exits 1 on any mismatch larger than the relative tolerance (default 1e-3).

    report --out DIR [--prefer runs|pretrained|runs-only] [--seed S]
        Collect every item of the write-up from finished runs and shipped checkpoints: the figures,
        summary.json (every final test loss with its unit and where it came from), writeup.md and writeup.pdf.

Runs go to $ARLAB_RUNS_DIR (default runs/), as the app's do, so the app shows them too.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from . import report
from .lab import run_many, spec_for


def _write(store_items, out: Path):
    """Write the figures of finished runs, then print where they are."""
    from .lab import store as lab_store

    items, store = [], lab_store()
    for rid, st in store_items:
        if st.get("state") != "done":
            print(f"run {rid} ended {st.get('state')}: {st.get('reason', '')}", file=sys.stderr)
            continue
        items.append(report.from_run(store, rid, out))
    return items


def _print_items(items, out):
    for it in items:
        loss = f"{it.test_loss:.4f} {it.unit}" if it.test_loss is not None else ""
        print(f"{it.question} {it.dataset}: {loss} ({it.source})")
        for n in it.figures:
            print(f"  wrote {Path(out) / n}")
        for n, why in it.missing.items():
            print(f"  missing {n}: {why}")


def cmd_run(a) -> int:
    ds = report.dataset_name(a.question, a.dataset)
    out = Path(a.out)
    if a.pretrained:
        names = [e["name"] for e in report.sources.shipped(a.question, ds)]
        name = names[0] if a.pretrained == "auto" and names else a.pretrained
        if name == "auto":
            raise report.ReportError(f"no checkpoint is shipped for {a.question} on {ds}")
        items = [report.from_pretrained(name, out, a.seed, _device(a.device))]
    else:
        items = _write(run_many([spec_for(a.question, ds, a.preset, a.epochs, a.device, a.seed, a.data_fraction)]),
                       out)
    if items:
        report.write_summary(items, out)
    _print_items(items, out)
    return 0 if items else 1


def cmd_all(a) -> int:
    only = a.only.split(",") if a.only else report.QUESTIONS
    for q in only:
        if q not in report.DSETS:
            raise report.ReportError(f"unknown question {q!r} (known: {', '.join(report.QUESTIONS)})")
    specs = [spec_for(q, ds, a.preset, a.epochs, a.device, a.seed, a.data_fraction)
             for q in only for ds in report.DSETS[q]]
    t0 = time.time()
    done = run_many(specs, a.jobs)
    print(f"{len(done)} runs in {time.time() - t0:.0f} s; writing the report to {a.out}")
    out = Path(a.out)
    items = _write(done, out)
    report.write_summary(items, out)
    report.write_writeup(items, out)
    _print_items(items, out)
    return 0 if all(st.get("state") == "done" for _, st in done) else 1


def _device(name: str) -> str:
    from .device import pick_device

    return pick_device(name)


def cmd_eval(a) -> int:
    from . import checkpoints
    from .evaluate import recompute

    entries = checkpoints.manifest()
    names = a.names or [e["name"] for e in entries]
    unknown = [n for n in names if not checkpoints.find(name=n)]
    if unknown:
        raise report.ReportError(f"not in the manifest: {', '.join(unknown)}")
    bad = 0
    for name in names:
        e = checkpoints.find(name=name)[0]
        t0 = time.time()
        got = recompute(name, _device(a.device), progress=True)
        want = e["test_loss"]
        ok = math.isclose(got, want, rel_tol=a.tolerance, abs_tol=1e-6)
        bad += not ok
        print(f"{'ok      ' if ok else 'MISMATCH'} {name}: recomputed {got:.6f}, manifest {want:.6f} "
              f"{e.get('unit') or ''} ({time.time() - t0:.0f} s)", flush=True)
    return 1 if bad else 0


def cmd_report(a) -> int:
    out = report.write_all(a.out, a.prefer, seed=a.seed, log=print)
    _print_items(out["items"], a.out)
    print(f"wrote {out['summary']}, {out['markdown']}, {out['pdf']}")
    return 0


def cmd_warm_tokens(a) -> int:
    from .questions.q4.tokens import warm_cache

    warm_cache(log=print)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p, preset=True):
        if preset:
            p.add_argument("--preset", default="quick", help="quick (CPU-sized) or homework (the notebook's)")
            p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
            p.add_argument("--data-fraction", type=float, default=None, metavar="F",
                           help="train on this share (0 < F <= 1) of each training set: a smoke run")
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("run", help="train (or load) one question on one data set and write its figures")
    p.add_argument("question", choices=report.QUESTIONS)
    p.add_argument("--dataset", required=True, help="1, 2, or a data-set name")
    p.add_argument("--out", default="figures")
    p.add_argument("--pretrained", nargs="?", const="auto", default=None, metavar="NAME",
                   help="load a shipped checkpoint (default: the one for this data set) instead of training")
    common(p)
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("all", help="every question and data set, then the report")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--only", default="", help="comma-separated questions (default: all)")
    p.add_argument("--out", default="figures")
    common(p)
    p.set_defaults(fn=cmd_all)
    p = sub.add_parser("eval-pretrained", help="recompute shipped checkpoints' test losses")
    p.add_argument("names", nargs="*")
    p.add_argument("--tolerance", type=float, default=1e-3, help="relative tolerance (default 1e-3)")
    common(p, preset=False)
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("warm-tokens", help="tokenize the coloured MNIST sets with the shipped tokenizers into the "
                                          "data cache (the first Q4b and Q6 runs then start in seconds)")
    p.set_defaults(fn=cmd_warm_tokens)
    p = sub.add_parser("report", help="collect figures, summary.json and the write-up")
    p.add_argument("--out", required=True)
    p.add_argument("--prefer", default="runs", choices=("runs", "pretrained", "runs-only"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_report)
    a = ap.parse_args(argv)
    if getattr(a, "jobs", 1) < 1:
        ap.error("--jobs must be at least 1")
    try:
        if getattr(a, "device", "auto") != "auto":
            _device(a.device)   # refuse an absent device before anything runs
        return a.fn(a)
    except (report.ReportError, ValueError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
