"""Checkpoints: safetensors files (weights only, nothing to unpickle) with the model config in their metadata,
and `pretrained/manifest.json`, which lists every shipped checkpoint with its sha256, config and test loss.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from . import ROOT

PRETRAINED = ROOT / "pretrained"
MANIFEST = PRETRAINED / "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit what it is loaded into."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path, model, config: dict, meta: dict | None = None) -> Path:
    """Write the model's tensors and `config` (JSON in the metadata) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"config": json.dumps(config), "meta": json.dumps(meta or {})})
    os.replace(tmp, path)
    return path


def read_checkpoint(path, expected_sha256: str | None = None) -> tuple[dict, dict, dict]:
    """(state_dict, config, meta); raises CheckpointError with a clear message on any problem."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if expected_sha256 and sha256(path) != expected_sha256:
        raise CheckpointError(f"checkpoint {path.name} does not match its recorded sha256 (corrupt or replaced)")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        return state, json.loads(md.get("config", "{}")), json.loads(md.get("meta", "{}"))
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises several types for truncated or garbled files
        raise CheckpointError(f"checkpoint {path.name} cannot be read ({type(e).__name__}: {e})") from None


def load_into(model, state: dict, name: str = "checkpoint"):
    """Load a state dict, turning shape/key mismatches into a CheckpointError that says what differs."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{name} does not fit this model: {str(e).splitlines()[0]}") from None
    return model


# ------------------------------------------------------------------------------------------------- the manifest
def manifest(path: Path = MANIFEST) -> list[dict]:
    try:
        return json.loads(Path(path).read_text())["checkpoints"]
    except FileNotFoundError:
        return []


def find(question: str | None = None, dataset: str | None = None, name: str | None = None,
         path: Path = MANIFEST) -> list[dict]:
    return [e for e in manifest(path) if (question is None or e["question"] == question)
            and (dataset is None or e["dataset"] == dataset) and (name is None or e["name"] == name)]


def load_pretrained(name: str, path: Path = MANIFEST) -> tuple[dict, dict, dict]:
    """(state, config, entry) of the manifest entry `name`, verified against its sha256."""
    entries = find(name=name, path=path)
    if not entries:
        raise CheckpointError(f"no pretrained checkpoint named {name!r} in {Path(path).name}")
    entry = entries[0]
    state, config, _ = read_checkpoint(Path(path).parent / entry["file"], entry.get("sha256"))
    return state, config, entry


def add_to_manifest(entry: dict, path: Path = MANIFEST) -> None:
    """Insert or replace (by name) an entry; computes the file's sha256."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {**entry, "sha256": sha256(path.parent / entry["file"]),
             "created": entry.get("created") or time.strftime("%Y-%m-%d")}
    with open(path.with_name(".manifest.lock"), "a") as lock:  # several trainings may finish at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = [e for e in manifest(path) if e["name"] != entry["name"]] + [entry]
        entries.sort(key=lambda e: e["name"])
        tmp = path.with_name(".manifest.json.tmp")
        tmp.write_text(json.dumps({"checkpoints": entries}, indent=1) + "\n")
        os.replace(tmp, path)
