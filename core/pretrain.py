"""Train a checkpoint for `pretrained/` with the project's own code, and record it in the manifest.

    python -m core.pretrain NAME QUESTION DATASET [--preset homework] [--set key=value ...] [--device auto]

It runs the question exactly as a background run would (same worker, same events), then copies the run's
checkpoint to pretrained/NAME.safetensors and writes NAME's manifest entry (config, data set, preset, budget,
final test loss on the full test set, wall time, device).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import checkpoints, data, sources
from .lab import RunSpec, store as RunStore


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def pretrain(name: str, question: str, dataset: str, preset: str = "homework", overrides: dict | None = None,
             device: str = "auto", seed: int = 0, out_dir: Path = checkpoints.PRETRAINED,
             runs_root: Path | None = None, init: str = "") -> dict:
    """init: continue training from this model source ("pretrained:NAME" | "run:ID"); the entry then counts the
    epochs and seconds of both parts and says so."""
    from . import questions
    from .device import describe, pick_device
    from .engine.worker import main as run_worker

    q = questions.get(question)
    hp = {**q.preset(preset), **(overrides or {})}
    from dataclasses import replace

    from .engine.policy import Policy

    store = RunStore(runs_root or Path(os.environ.get("ARLAB_RUNS_DIR") or "runs"),
                     policy=replace(Policy.from_env(1), owner_queued=None, owner_running=None))
    before = None
    if init:
        found = sources.resolve(init, question, dataset)
        prior = checkpoints.find(name=found.source.split(":", 1)[1])[0] if found.source.startswith("pretrained:") \
            else {}
        before = {"source": found.source, "sha256": found.sha256,
                  **{k: prior.get(k) for k in ("epochs", "train_seconds", "test_loss", "device")}}
    rid = store.submit(RunSpec(question, dataset, hp, seed=seed, device=device, preset=preset, label=name, init=init),
                       start=False)
    run_dir = store.root / rid
    t0 = time.time()
    code = run_worker(str(run_dir))
    status = store.status(rid)
    if code != 0 or status.get("state") != "done":
        raise RuntimeError(f"{name}: run {rid} ended {status.get('state')}: {status.get('reason')}")
    result = status.get("result") or {}
    src = run_dir / "model.safetensors"
    _, config, _ = checkpoints.read_checkpoint(src)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out_dir / f"{name}.safetensors")
    epochs, seconds = hp.get("epochs"), round(time.time() - t0, 1)
    if before and before["epochs"] and epochs:
        epochs = before["epochs"] + epochs
        seconds = round(seconds + (before["train_seconds"] or 0), 1)
    label = preset if epochs == q.preset(preset).get("epochs") else f"{preset}, {epochs} epochs"
    if before:
        label += f" ({before['epochs']} + {hp.get('epochs')} continued)" if before["epochs"] else \
            f" (continued from {before['source']})"
    entry = {"name": name, "question": question, "dataset": dataset, "preset": label,
             "file": f"{name}.safetensors", "config": config, "hparams": store.spec(rid).hparams, "seed": seed,
             "test_loss": result.get("test_loss"), "epochs": epochs,
             "train_seconds": seconds, "device": describe(pick_device(device)),
             "created": time.strftime("%Y-%m-%d"),
             "unit": result.get("unit") or q.unit,
             **({"data_version": data.SETS[dataset]["version"]} if "version" in data.SETS[dataset] else {}),
             **{k: v for k, v in result.items() if k in ("metrics", "test_metrics")},
             **({"continued_from": before} if before else {}),
             "history": history(store.events(rid)[0])}
    checkpoints.add_to_manifest(entry, out_dir / "manifest.json")
    return entry


def history(events: list[dict], train_points: int = 200) -> dict:
    """How a checkpoint trained, small enough for its manifest entry, in the entry's unit: every per-epoch test loss
    ([epoch, loss], epoch 0 = before training) and the train loss thinned to at most `train_points` [epoch, mean]
    points (each the mean of an equal share of the minibatches, at the share's last epoch position). A tokenizer's
    are its reconstruction MSE (its "vq_test" / "vq" events), not the fit's total loss."""
    vq = any(e.get("type") == "vq_test" for e in events)
    per_epoch = next((e["steps_per_epoch"] for e in events if e.get("type") == "start"), 1) or 1
    if vq:
        test = [[e["epoch"], e["recon"]] for e in events if e.get("type") == "vq_test"]
        train = [(e["step"] / per_epoch, e["recon"]) for e in events if e.get("type") == "vq"]
    else:
        test = [[e["epoch"], e["loss"]] for e in events if e.get("type") == "test"]
        train = [(e["epoch"], e["loss"]) for e in events if e.get("type") == "train"]
    step = max(1, -(-len(train) // train_points))
    thinned = [[round(chunk[-1][0], 4), round(sum(x for _, x in chunk) / len(chunk), 6)]
               for chunk in (train[i:i + step] for i in range(0, len(train), step))]
    return {"test": [[ep, round(x, 6)] for ep, x in test], "train": thinned}


def pretrain_digits(name: str = "digits-mnist-v2", epochs: int = 2, seed: int = 0,
                    out_dir: Path = checkpoints.PRETRAINED) -> dict:
    """Q6's digit classifier (core.models.digits) on the mnist-v2 training images, with its manifest entry: test
    cross-entropy (nats/image), accuracy on the test images and on the shipped tokenizer's reconstructions of them."""
    from . import data
    from .device import describe, pick_device
    from .questions import q4, q6

    xtr, xte, ctr, cte = data.load("mnist-v2")
    t0 = time.time()
    model, acc, res = q6.train_digit_classifier(xtr, q6.labels_of(ctr), xte, q6.labels_of(cte), epochs, seed)
    seconds = round(time.time() - t0, 1)
    tok = q4.load_tokenizer("pretrained", dataset="mnist-v2")
    rec = q4.to_images(tok.decode(q4.tokenize(tok, xte).reshape(-1, 7, 7)))
    acc_rec = float((model.predict(rec) == q6.labels_of(cte)).mean())
    out_dir = Path(out_dir)
    config = {"question": "digits", "channels": model.channels, "hidden": model.hidden}
    path = checkpoints.save_checkpoint(out_dir / f"{name}.safetensors", model, config)
    entry = {"name": name, "question": "digits", "dataset": "mnist-v2", "preset": f"{epochs} epochs",
             "file": path.name, "config": config, "hparams": {"epochs": epochs, "batch_size": 128, "lr": 2e-3},
             "seed": seed, "test_loss": res.test_losses[-1], "unit": "nats/image", "epochs": epochs,
             "train_seconds": seconds, "device": describe(pick_device("cpu")), "created": time.strftime("%Y-%m-%d"),
             "metrics": {"accuracy": acc, "accuracy_on_reconstructions": acc_rec},
             "note": "Q6's measuring instrument: reads the digit of an mnist-v2 image whatever its colours"}
    checkpoints.add_to_manifest(entry, out_dir / "manifest.json")
    return entry


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("question")
    ap.add_argument("dataset")
    ap.add_argument("--preset", default="homework")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(checkpoints.PRETRAINED))
    ap.add_argument("--init", default="", metavar="SOURCE",
                    help="continue training from this model (pretrained:NAME or run:ID): the entry adds both parts' "
                         "epochs and seconds")
    args = ap.parse_args(argv)
    if args.question == "digits":
        print(json.dumps(pretrain_digits(args.name, seed=args.seed, out_dir=Path(args.out)), indent=1))
        return 0
    overrides = dict(kv.split("=", 1) for kv in args.set)
    entry = pretrain(args.name, args.question, args.dataset, args.preset,
                     {k: parse_value(v) for k, v in overrides.items()}, args.device, args.seed, Path(args.out),
                     init=args.init)
    print(json.dumps(entry, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
