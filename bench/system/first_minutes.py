"""A learner's first minutes on a CPU: for every question on its first data set, the quick preset from scratch and
the fine-tune from the shipped model, each through the real engine (a worker process, as the app starts it).

    python -m bench.system.first_minutes [--only q1a,q6] [--kinds quick,fine-tune] [--out DIR] [--timeout 900]

Prints one row per run: seconds from submit to the first curve point (the first train or test event: a fine-tune's
curve starts at its starting model's test loss) and to done, the
final test loss in the question's unit, the shipped model's test loss beside a fine-tune (and the ratio), and the
question's sample-quality measure where one fits: Q6 "images match their captions" (its run measures it), and on
MNIST data the share of the run's final samples the shipped digit classifier reads as a digit with confidence
>= 0.9 (nothing where no instrument fits: shapes, 1-D data, poetry). Runs go one at a time into a fresh runs folder
(the app's runs/ is untouched); DIR/first_minutes.json keeps the table. Targets (issue: a learner's first minutes):
every run done in <= 180 s, the first point <= 15 s after submit, a fine-tune within 5% of the shipped model's test
loss or better, Q6's fine-tune images matching >= 0.75. A Q4b or Q6 row says how many of its images' tokens the data
cache already held (`python -m core warm-tokens`, which `lab.sh app` starts in the background, fills it).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIDENT = 0.9   # a sample "reads as a digit" when the classifier gives one class this probability or more


def digit_share(images) -> float | None:
    """Share of images the shipped digit classifier reads with confidence >= CONFIDENT (None if not shipped)."""
    import torch

    from core.models.digits import shape_map
    from core.questions.q6 import load_digit_classifier

    model, _ = load_digit_classifier("cpu")
    if model is None or images is None or len(images) == 0:
        return None
    with torch.no_grad():
        p = torch.softmax(model(shape_map(np.asarray(images))), dim=1).max(1).values
    return float((p >= CONFIDENT).float().mean())


def final_samples(run_dir: Path):
    """The run's final samples (samples.npy, as the worker saves them), None when it saved none."""
    return np.load(run_dir / "samples.npy") if (run_dir / "samples.npy").exists() else None


def one(store, spec, timeout: float) -> dict:
    t0 = time.time()
    rid = store.submit(spec)
    first = None
    while True:
        store.pump()
        status = store.status(rid)
        if first is None and any(e.get("type") in ("train", "test") for e in store.events(rid)[0]):
            first = time.time() - t0
        if status.get("state") not in ("queued", "running"):
            break
        if time.time() - t0 > timeout:
            store.cancel(rid)
            status = {"state": f"over {timeout:.0f} s (cancelled)"}
            break
        time.sleep(0.5)
    done = time.time() - t0
    res = status.get("result") or {}
    logs = [e.get("msg", "") for e in store.events(rid)[0] if e.get("type") == "log"]
    cache = next((m for m in logs if "token cache" in m), None)   # Q4b/Q6: what the data cache already held
    return {"run": rid, "state": status.get("state"), "reason": status.get("reason", ""),
            "first_point_s": round(first, 1) if first is not None else None, "done_s": round(done, 1),
            "test_loss": res.get("test_loss"), "unit": res.get("unit", ""),
            "images_match": res.get("images_match"), "start_loss": (res.get("metrics") or {}).get("start_loss"),
            "tokens": cache}


def main(argv=None) -> int:
    from core import checkpoints, questions, sources
    from core.lab import RunSpec, store as make_store

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated questions (default: every one)")
    ap.add_argument("--kinds", default="quick,fine-tune")
    ap.add_argument("--out", default="")
    ap.add_argument("--timeout", type=float, default=900, help="a run still going after this is cancelled")
    a = ap.parse_args(argv)
    keys = [k for k in questions.REGISTRY if not a.only or k in a.only.split(",")]
    kinds = a.kinds.split(",")
    out = Path(a.out or tempfile.mkdtemp(prefix="first-minutes-"))
    store = make_store(out / "runs")
    rows = []
    print(f"{'question':9} {'data set':15} {'kind':10} {'first pt':>8} {'done':>7} {'test loss':>10} "
          f"{'shipped':>9} {'ratio':>6} {'quality':>22}", flush=True)
    for key in keys:
        q = questions.get(key)
        ds = q.course_datasets[0]
        for kind in kinds:
            if kind == "quick":
                if "quick" not in q.presets:
                    continue
                spec, shipped = RunSpec(key, ds, q.preset("quick"), preset="quick", label="first minutes"), None
            else:
                starts = [s for s in sources.starts(key, ds) if s[0].startswith("pretrained:")] if q.finetune else []
                if not starts:
                    continue
                source, _, hp = starts[0]
                shipped = checkpoints.find(name=source.split(":", 1)[1])[0].get("test_loss")
                spec = RunSpec(key, ds, q.start_hparams(hp), preset="fine-tune", init=source, label="first minutes")
            r = {"question": key, "dataset": ds, "kind": kind, **one(store, spec, a.timeout), "shipped": shipped}
            if ds.startswith("mnist") and r["state"] == "done":
                r["reads_as_digit"] = digit_share(final_samples(store.dir(r["run"])))
            rows.append(r)
            ratio = r["test_loss"] / shipped if shipped and r["test_loss"] else None
            quality = (f"images match {r['images_match']:.3f}" if r.get("images_match") is not None else
                       f"digit >=0.9: {r['reads_as_digit']:.3f}" if r.get("reads_as_digit") is not None else "")
            loss = f"{r['test_loss']:.4f}" if isinstance(r["test_loss"], float) else str(r["state"])
            print(f"{key:9} {ds:15} {kind:10} {r['first_point_s'] or '-':>8} {r['done_s']:>7} {loss:>10} "
                  f"{shipped or '':>9.7} {(f'{ratio:.3f}' if ratio else ''):>6} {quality:>22}  {r['unit']}"
                  + (f"  ({r['tokens']})" if r.get("tokens") else ""), flush=True)
    (out / "first_minutes.json").write_text(json.dumps(rows, indent=1))
    print(f"table: {out / 'first_minutes.json'}")
    return 0


if __name__ == "__main__":
    main()
