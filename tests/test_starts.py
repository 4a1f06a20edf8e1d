"""Starting a run from a trained model (fine-tune) and training a finished run N more epochs: the fine-tune
settings, what a run may start from, the chain of continued runs as one curve, and the pages (AppTest)."""
import pytest

from core import compare, sources
from core.compare import Series
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


def test_continue_spec_trains_the_same_run_n_more_epochs():
    from core.engine import RunSpec

    spec = RunSpec("q2a", "shapes", {"filters": 8, "epochs": 10, "lr": 1e-3}, seed=3, preset="quick", owner="b:ann")
    new = compare.continue_spec(spec, 4, "20260101-120000-q2a-0a1b2c")
    assert new.hparams == {"filters": 8, "epochs": 4, "lr": 1e-3} and spec.hparams["epochs"] == 10
    assert (new.init, new.preset, new.seed, new.question, new.dataset) == \
        ("run:20260101-120000-q2a-0a1b2c", "continue", 3, "q2a", "shapes")
    assert "20260101-120000-q2a-0a1b2c" in new.label


def _fake(rid, epochs, steps=2, t=10.0, start=1.0):
    tests = [start - 0.1 * e for e in range(epochs + 1)]
    return Series(rid, "nats/dim", steps, train=[1.0] * (epochs * steps),
                  train_epoch=[(i + 1) / steps for i in range(epochs * steps)],
                  train_t=[t * (i + 1) / (epochs * steps) for i in range(epochs * steps)], test=tests,
                  test_t=[t * e / epochs for e in range(epochs + 1)],
                  train_step=list(range(1, epochs * steps + 1)))


def test_join_continues_the_epochs_steps_and_seconds_of_chained_runs():
    a, b, c = _fake("a", 3), _fake("b", 2, start=0.7), _fake("c", 1, start=0.5)
    s, restarts = compare.join([a, b, c])
    assert restarts == [3, 5] and s.run_id == "c" and s.unit == "nats/dim"
    assert len(s.test) == 7 and s.test[:4] == a.test and s.test[4:6] == b.test[1:] and s.test[6] == c.test[1]
    assert s.train_epoch[:6] == a.train_epoch and s.train_epoch[6:10] == [3.5, 4.0, 4.5, 5.0]
    assert s.train_epoch[-2:] == [5.5, 6.0]
    assert s.train_step == list(range(1, 13)) and s.train_t[6] == pytest.approx(12.5)
    assert s.test_t[4] == pytest.approx(15.0)
    one, none = compare.join([a]), compare.join([])
    assert one[1] == [] and one[0].test == a.test and none[1] == [] and none[0].test == []


def test_chain_follows_init_back_and_stops_where_the_viewer_may_not_look(runs_dir):
    from core.lab import store as RunStore

    store = RunStore(runs_dir)
    a = _run(runs_dir, "ann", train=False)
    b = _run(runs_dir, "ann", init=f"run:{a}", train=False)
    c = _run(runs_dir, "ann", init=f"run:{b}", train=False)
    shipped = _run(runs_dir, "ann", init="pretrained:q2a-shapes", train=False)
    assert compare.chain(store, c) == [a, b, c] and compare.chain(store, a) == [a]
    assert compare.chain(store, c, lambda rid: rid != a) == [b, c]
    assert compare.chain(store, shipped) == [shipped]


def test_a_run_with_init_starts_at_its_sources_test_loss(runs_dir):
    from core.lab import store as RunStore

    src = _run(runs_dir, "ann", hp={"epochs": 2})
    store = RunStore(runs_dir)
    more = _run(runs_dir, "ann", init=f"run:{src}", hp={"epochs": 1, "lr": 0.01})

    def tests(rid):
        return [e["loss"] for e in store.events(rid)[0] if e.get("type") == "test"]

    assert tests(more)[0] == pytest.approx(tests(src)[-1], rel=1e-5)      # epoch 0: the source's own loss


def test_a_continued_run_is_drawn_with_its_source_as_one_curve(runs_dir):
    from core.lab import store as RunStore

    src = _run(runs_dir, "ann", hp={"epochs": 2})
    store = RunStore(runs_dir)
    more = _run(runs_dir, "ann", init=f"run:{src}", hp={"epochs": 1, "lr": 0.01})
    s, restarts, ids = compare.chained(store, more)
    assert ids == [src, more] and restarts == [2] and len(s.test) == 4
    assert s.test[:3] == compare.series(store, src).test and s.test[3] == compare.series(store, more).test[1]
    at = open_page("pages/runs.py", "ann", {"run": more})
    assert any("Continues" in c.value for c in at.caption)
    import json

    mon = json.loads(at.get("plotly_chart")[-1].proto.spec)              # the run's curve: the restart dotted
    assert [sh["x0"] for sh in mon["layout"]["shapes"] if sh["line"]["dash"] == "dot"] == [2]
    at.multiselect(key="runs:compare").set_value([more]).run()
    assert not at.exception, [e.value for e in at.exception]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)              # compare: the chain is one line
    test = next(t for t in chart["data"] if t["name"] == f"{more} · test")
    assert len(test["y"]) == 4


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


def test_train_n_more_epochs_is_offered_to_the_owner_and_continues_the_run(runs_dir):
    from core.lab import store as RunStore

    store = RunStore(runs_dir)
    rid = _run(runs_dir, "ann")
    token = store.share(rid)
    bob = open_page("pages/runs.py", "bob", {"run": rid, "share": token})
    assert not any("more epochs" in b.label for b in bob.button)
    at = open_page("pages/runs.py", "ann", {"run": rid})
    next(n for n in at.number_input if n.label == "more epochs").set_value(1).run()
    next(b for b in at.button if b.label == "Train 1 more epochs").click().run()
    assert not at.exception, [e.value for e in at.exception]
    new = [r for r in store.list() if r["id"] != rid]
    assert len(new) == 1
    store.cancel(new[0]["id"])
    spec = new[0]["spec"]
    assert spec["init"] == f"run:{rid}" and spec["hparams"]["epochs"] == 1 and spec["preset"] == "continue"
    assert spec["owner"] == "b:ann" and at.query_params["run"] == new[0]["id"]
