"""Starting a run from a trained model (fine-tune): the fine-tune settings, what a run may start from, and the
pages (AppTest)."""
import pytest

from core import sources
from core.questions import REGISTRY, get
from tests.conftest import open_page


def _run(runs_dir, who, question="q1a", dataset="1d-1", hp=None, init="", train=True):
    """A run of `who` ("" = no owner): trained in-process (train=True), else a folder that reads as finished."""
    from core.engine import worker
    from core.lab import RunSpec, store as RunStore

    store = RunStore(runs_dir)
    spec = RunSpec(question, dataset, {**get(question).preset("quick"), "epochs": 2, **(hp or {})}, preset="quick",
                   owner=f"b:{who}" if who else "", owner_name=who, init=init)
    rid = store.submit(spec, start=False)
    if train:
        assert worker.main(str(runs_dir / rid)) == 0
    else:
        store.set_status(rid, state="done", result={"test_loss": 2.6, "unit": "nats/dim"})
        (runs_dir / rid / "model.safetensors").write_bytes(b"")
    return rid


def _radio(at, label):
    return next((r for r in at.radio if r.label == label), None)


# ----------------------------------------------------------------------------------------------- core
@pytest.mark.parametrize("key", [k for k in REGISTRY if get(k).finetune is not None])
def test_start_hparams_keep_the_sources_architecture_and_fine_tune_the_rest(key):
    q = get(key)
    hw = q.preset("homework")
    source = {**hw, **{f: hw[f] for f in q.architecture}, "unknown": 1}
    hp = q.start_hparams(source)
    assert "unknown" not in hp and all(hp[f] == source[f] for f in q.architecture)
    assert hp["lr"] <= hw["lr"] / 5 and hp["epochs"] <= 2
    assert q.validate(hp, q.datasets[0]) == hp                      # a valid run on its data sets
    hacked = type(q)()
    hacked.finetune = {**q.finetune, **{f: "other" for f in q.architecture}}
    assert all(hacked.start_hparams(source)[f] == source[f] for f in q.architecture)   # the weights' sizes win


def test_start_hparams_of_the_shipped_q2a_model():
    from core import checkpoints

    if not checkpoints.find(name="q2a-shapes"):
        pytest.skip("no q2a-shapes shipped")
    hp = get("q2a").start_hparams(checkpoints.find(name="q2a-shapes")[0]["hparams"])
    assert (hp["filters"], hp["layers"], hp["kernel_size"]) == (64, 5, 7)
    assert (hp["lr"], hp["epochs"], hp["subset"]) == (1e-4, 1, 2000.0)


def test_starts_lists_the_shipped_model_and_the_viewers_own_finished_runs(runs_dir):
    from core import checkpoints

    ann, bob, nobody = (_run(runs_dir, w, train=False) for w in ("ann", "bob", ""))
    assert [s for s, _, _ in sources.starts("q1a", "1d-1", runs_dir, owner="b:ann")] == [f"run:{ann}"]
    assert {s for s, _, _ in sources.starts("q1a", "1d-1", runs_dir)} == {f"run:{r}" for r in (ann, bob, nobody)}
    assert sources.starts("q1a", "1d-2", runs_dir, owner="b:ann") == []
    src, label, hp = sources.starts("q1a", "1d-1", runs_dir, owner="b:ann")[0]
    assert hp["epochs"] == 2 and ann in label
    if checkpoints.find(name="q2a-shapes"):
        first = sources.starts("q2a", "shapes", runs_dir, owner="b:ann")[0]
        assert first[0] == "pretrained:q2a-shapes" and first[2] == checkpoints.find(name="q2a-shapes")[0]["hparams"]


def test_a_run_with_init_starts_at_its_sources_test_loss(runs_dir):
    from core.lab import store as RunStore

    src = _run(runs_dir, "ann", hp={"epochs": 2})
    store = RunStore(runs_dir)
    more = _run(runs_dir, "ann", init=f"run:{src}", hp={"epochs": 1, "lr": 0.01})

    def tests(rid):
        return [e["loss"] for e in store.events(rid)[0] if e.get("type") == "test"]

    assert tests(more)[0] == pytest.approx(tests(src)[-1], rel=1e-5)      # epoch 0: the source's own loss


# ----------------------------------------------------------------------------------------------- pages
def test_q2_fine_tunes_the_shipped_model(runs_dir):
    from core import checkpoints
    from core.lab import store as RunStore

    if not checkpoints.find(name="q2a-shapes"):
        pytest.skip("no q2a-shapes shipped")
    at = open_page("pages/q2_pixelcnn.py", "ann", {"dataset": "shapes"})
    start = _radio(at, "Start from")
    assert start.options == ["scratch", "the shipped model"] and start.value == "scratch"
    start.set_value("the shipped model").run()
    assert not at.exception, [e.value for e in at.exception]
    assert _radio(at, "Preset").value == "fine-tune" and at.query_params["q2a.start"] == "shipped"
    filters = next(n for n in at.number_input if n.label == "filters")
    lr = next(n for n in at.number_input if n.label == "learning rate")
    assert filters.value == 64 and filters.disabled and lr.value == 1e-4 and not lr.disabled
    next(b for b in at.button if b.label == "Train PixelCNN (binary)").click().run()
    assert not at.exception, [e.value for e in at.exception]
    runs = RunStore(runs_dir).list()
    assert len(runs) == 1
    RunStore(runs_dir).cancel(runs[0]["id"])   # started in the background: stop it
    spec = runs[0]["spec"]
    assert spec["init"] == "pretrained:q2a-shapes" and spec["preset"] == "fine-tune"
    shipped = checkpoints.find(name="q2a-shapes")[0]["hparams"]
    assert all(spec["hparams"][k] == shipped[k] for k in ("filters", "layers", "kernel_size"))
    assert spec["hparams"]["epochs"] == 1


def test_my_finished_runs_are_offered_to_their_owner_only(runs_dir):
    rid = _run(runs_dir, "ann")
    at = open_page("pages/q1_1d.py", "ann", {"q1a.start": f"run:{rid}"})
    start = next(r for r in at.radio if r.label == "Start from" and r.key.startswith("q1a:"))
    assert start.options == ["scratch", "one of my finished runs"] and start.value == "one of my finished runs"
    assert next(s for s in at.selectbox if s.label == "Which run").value == f"run:{rid}"
    bob = open_page("pages/q1_1d.py", "bob", {"q1a.start": f"run:{rid}"})
    assert not any(r.label == "Start from" for r in bob.radio)                  # bob has no finished run
    warned = " ".join(w.value for w in bob.warning)
    assert "not yours to open" in warned and rid not in warned
