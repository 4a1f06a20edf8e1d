"""Model sources: where a trained model comes from, for every kind of model, in one place.

    "pretrained:NAME"   a checkpoint shipped in pretrained/ (checked against the sha256 in its manifest entry)
    "run:ID"            the model.safetensors of a finished run under the runs folder

    config(source)             its config, without reading the weights
    load(source, device)       -> (model in eval mode, config)
    build(config)              a model with fresh weights from a saved config (config["question"] says the kind)
    choices(questions, dataset) -> [(source, label)]: shipped checkpoints first, then finished runs, newest first
    starts(question, dataset, owner=) -> [(source, label, hparams)]: what a run may start from (shipped, own runs)
    best_first(choices(...))   the same, ordered for a picker (shipped, then runs by test loss), "best"/"newest" said
    resolve(source, ...)       -> Found: where it is, checked against the question and data set it must fit

A source is never a path: NAME must be an entry of the manifest, ID a run id of the store's own format.

Finished runs are listed through the run store's public API with an explicit runs root (`runs_root`; None = the
default folder). Questions use this module; none of them reads run folders itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import checkpoints
from .checkpoints import CheckpointError
from .engine.runs import is_run_id

RUN_FILE = "model.safetensors"


class SourceMissing(CheckpointError):
    """The source names nothing usable (not shipped, no such run, not finished, another kind or data set)."""


@dataclass
class Found:
    source: str           # "pretrained:NAME" | "run:ID"
    label: str            # for messages and pickers
    path: Path
    sha256: str | None    # shipped checkpoints only
    question: str
    dataset: str


def _store(runs_root=None):
    from .engine.runs import RunStore

    return RunStore(runs_root)


def parse(source: str) -> tuple[str, str]:
    if not isinstance(source, str) or len(source) > 200:
        raise SourceMissing("a model source is 'pretrained:NAME' or 'run:ID' (a short text)")
    kind, sep, name = source.partition(":")
    if not sep or kind not in ("pretrained", "run") or not name:
        raise SourceMissing(f"a model source is 'pretrained:NAME' or 'run:ID', got {_shown(source)}")
    if kind == "run" and not is_run_id(name):
        raise SourceMissing(f"{_shown(name)} is neither a shipped checkpoint nor a run id (a run id reads like "
                            "20260101-120000-q1a-0a1b2c)")
    return kind, name


def run_id_of(value) -> str | None:
    """The run a model field names ("run:ID" or a bare run id), None for anything else (a shipped model, "")."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    rid = value[4:] if value.startswith("run:") else value
    return rid if is_run_id(rid) else None


def _shown(text: str) -> str:
    """A learner's text quoted in a message: short, on one line."""
    text = " ".join(str(text).split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


def resolve(source: str, questions=None, dataset: str | None = None, runs_root=None) -> Found:
    """Where `source` lives. Also takes a bare shipped name or a bare run id (older fields and the notebook use
    them). With `questions`/`dataset`, a model of another kind or data set is refused, saying so."""
    source = (source or "").strip() if isinstance(source, str) else source
    if isinstance(source, str) and ":" not in source and len(source) <= 200:
        source = f"pretrained:{source}" if checkpoints.find(name=source) else f"run:{source}"
    kind, name = parse(source)
    questions = (questions,) if isinstance(questions, str) else questions
    if kind == "pretrained":
        entries = checkpoints.find(name=name)
        if not entries:
            raise SourceMissing(f"no pretrained checkpoint named {_shown(name)} is shipped yet")
        e = entries[0]
        found = Found(f"pretrained:{name}", f"pretrained {name}", checkpoints.PRETRAINED / e["file"], e.get("sha256"),
                      e["question"], e["dataset"])
    else:
        store = _store(runs_root)
        run_dir = Path(store.root) / name
        try:
            spec, status = store.spec(name), store.status(name)
        except (KeyError, TypeError):
            raise SourceMissing(f"there is no run {name} here") from None
        if status.get("state") != "done":
            raise SourceMissing(f"run {run_dir.name} is {status.get('state', 'queued')}, not finished: wait for it "
                                f"or pick another")
        if not (run_dir / RUN_FILE).exists():
            raise SourceMissing(f"run {run_dir.name} has no saved model ({RUN_FILE})")
        found = Found(f"run:{run_dir.name}", f"run {run_dir.name}", run_dir / RUN_FILE, None, spec.question,
                      spec.dataset)
    what = found.label[0].upper() + found.label[1:]
    if questions and found.question not in questions:
        from .questions import model_label

        wanted = " or ".join(model_label(q) for q in questions)
        raise SourceMissing(f"{what} is {model_label(found.question)}, not {wanted}")
    if dataset and found.dataset != dataset:
        raise SourceMissing(f"{what} was trained on {found.dataset}, not {dataset}")
    return found


def config(source: str, runs_root=None) -> dict:
    """The config of a source, without loading its weights."""
    kind, name = parse(source)
    if kind == "pretrained":
        entries = checkpoints.find(name=name)
        if not entries:
            raise SourceMissing(f"no pretrained checkpoint named {_shown(name)} is shipped yet")
        return entries[0]["config"]
    path = Path(_store(runs_root).root) / name / RUN_FILE
    if not path.exists():
        raise SourceMissing(f"run {name!r} has no saved model (not finished, or deleted)")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("config", "{}"))
    except Exception as e:  # a truncated or garbled file
        raise CheckpointError(f"run {name}'s checkpoint cannot be read ({type(e).__name__}: {e})") from None


def kind_of(config: dict) -> str:
    """The question a config belongs to (config["question"]; an older config that names none is claimed by the
    question whose `owns_config` recognises it, e.g. the first tokenizers, which saved their VQVAEConfig alone)."""
    if "question" in config:
        return config["question"]
    from . import questions

    for key in questions.kinds():
        if questions.kind(key).owns_config(config):
            return key
    raise CheckpointError("the checkpoint's config does not say which model it is")


def build(config: dict):
    """A model with fresh weights from a saved config: the question (or instrument) the config names rebuilds it
    (its `rebuild`; one format per model, older checkpoints still load)."""
    from . import questions

    key = kind_of(config)
    try:
        owner = questions.kind(key)
    except KeyError:
        raise CheckpointError(f"no model kind for question {key!r}") from None
    return owner.rebuild(config)


def read(source: str, runs_root=None, questions=None, dataset: str | None = None) -> tuple[dict, dict, Found]:
    """(state dict, config, Found) of a source, verified against its sha256 when shipped."""
    found = resolve(source, questions, dataset, runs_root)
    state, cfg, _ = checkpoints.read_checkpoint(found.path, found.sha256)
    return state, cfg, found


def load(source: str, device: str = "cpu", runs_root=None, questions=None, dataset: str | None = None):
    """-> (model in eval mode on `device`, config)."""
    state, cfg, found = read(source, runs_root, questions, dataset)
    model = checkpoints.load_into(build(cfg), state, found.source)
    return model.to(device).eval(), cfg


def shipped(questions, dataset: str) -> list[dict]:
    """Manifest entries of these questions for `dataset`."""
    questions = (questions,) if isinstance(questions, str) else tuple(questions)
    return [e for e in checkpoints.find(dataset=dataset) if e["question"] in questions]


def data_note(entry: dict) -> str | None:
    """A shipped checkpoint trained on an older generator version of its (generated) data set says so: its
    samples look like that version, and its test loss is measured on that version's test images."""
    from . import data

    spec = data.SETS.get(entry.get("dataset"), {})
    v = entry.get("data_version")
    if v is None or "version" not in spec or v == spec["version"]:
        return None
    return (f"`{entry['name']}` was trained on generator v{v} of {spec['title']}, the earlier look of this set "
            f"(the set is now v{spec['version']}); its samples look like v{v} and its test loss is measured on "
            f"v{v}'s test images. A checkpoint for v{spec['version']} comes with the next retraining.")


def finished_runs(questions, dataset: str, runs_root=None, file: str = RUN_FILE, owner: str | None = None) -> list[dict]:
    """Finished runs of these questions for `dataset` that saved `file` (default: a model), newest first
    ({id, spec, status, dir}). owner: only the runs this owner may see (their own, pinned, of no owner); None = all
    (the command line, an instructor)."""
    return _store(runs_root).finished(questions, dataset, file, owner=owner)


def choices(questions, dataset: str, runs_root=None, owner: str | None = None) -> list[tuple[str, str]]:
    """(source, label) of every model of these questions for `dataset`: shipped first, then finished runs (those
    `owner` may see; None = all)."""
    out = [(f"pretrained:{e['name']}", f"pretrained · {e['name']} · test {e.get('test_loss') or float('nan'):.4f}")
           for e in shipped(questions, dataset)]
    for r in finished_runs(questions, dataset, runs_root, owner=owner):
        loss = (r["status"].get("result") or {}).get("test_loss")
        out.append((f"run:{r['id']}", f"run {r['id']} ({r['spec'].get('preset') or 'custom'})"
                    + (f" · test {loss:.4f}" if loss is not None else "")))
    return out


def starts(question: str, dataset: str, runs_root=None, owner: str | None = None) -> list[tuple[str, str, dict]]:
    """What a run of `question` on `dataset` may start from (RunSpec.init): (source, label, its hparams) of the
    shipped checkpoint(s) (their manifest entry's "hparams"), then the finished runs of that question and set that
    are `owner`'s own, newest first (None = every finished run: an instructor, the command line). A run started
    from one takes its architecture's settings (Question.start_hparams), so its weights fit."""
    out = [(f"pretrained:{e['name']}", f"shipped · {e['name']} · test {e.get('test_loss') or float('nan'):.4f}",
            dict(e.get("hparams") or {})) for e in shipped(question, dataset)]
    for r in finished_runs(question, dataset, runs_root, owner=owner):
        if owner is not None and (r["spec"].get("owner") or "") != owner:
            continue   # pinned runs and runs of no owner are not "mine"
        loss = (r["status"].get("result") or {}).get("test_loss")
        out.append((f"run:{r['id']}", f"run {r['id']} ({r['spec'].get('preset') or 'custom'})"
                    + (f" · test {loss:.4f}" if isinstance(loss, (int, float)) else ""),
                    dict(r["spec"].get("hparams") or {})))
    return out


def test_loss(source: str, runs_root=None) -> float | None:
    """The test loss a source reports: its manifest entry's (shipped) or its run's result; None when unknown."""
    try:
        kind, name = parse(source)
        if kind == "pretrained":
            entries = checkpoints.find(name=name)
            loss = entries[0].get("test_loss") if entries else None
        else:
            loss = (_store(runs_root).status(name).get("result") or {}).get("test_loss")
    except (ValueError, KeyError, OSError):
        return None
    return float(loss) if isinstance(loss, (int, float)) else None


def _created(source: str, runs_root=None) -> float:
    """When a "run:ID" source was submitted (0 when unknown)."""
    try:
        return float(_store(runs_root).status(parse(source)[1]).get("created") or 0.0)
    except (ValueError, KeyError, OSError, TypeError):
        return 0.0


def best_first(options: list[tuple[str, str]], runs_root=None) -> list[tuple[str, str]]:
    """choices() ordered for a model picker, whose default is the first: the shipped checkpoints (lowest test loss
    first), then finished runs by test loss (runs without one last). The lowest test loss of all is labelled "best",
    the newest run (by its creation time) "newest"."""
    losses = {src: test_loss(src, runs_root) for src, _ in options}
    runs = [src for src, _ in options if src.startswith("run:")]
    newest = max(runs, key=lambda src: (_created(src, runs_root), -runs.index(src))) if runs else None
    known = [src for src in losses if losses[src] is not None]
    best = min(known, key=losses.get) if known else None

    def rank(item):
        i, (src, _) = item
        loss = losses[src]
        return (not src.startswith("pretrained:"), loss is None, loss if loss is not None else 0.0, i)

    out = []
    for _, (src, label) in sorted(enumerate(options), key=rank):
        tags = [t for t, on in (("best", src == best), ("newest", src == newest)) if on]
        out.append((src, label + (f" · {' · '.join(tags)}" if tags else "")))
    return out
