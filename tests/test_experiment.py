"""Class experiments (core.experiment): values made and checked, dealt in turn, sized to finish, instructors only,
and the class chart's data from real runs."""
import json
import math

import pytest

from core import experiment as ex
from core.engine import worker
from core.lab import store

LRS = dict(lo=1e-3, hi=1.0, count=4, scale="log")


@pytest.fixture
def runs(runs_dir):
    return store(runs_dir)


def test_a_log_range_is_spaced_by_one_ratio_and_checked_against_the_fields_bounds():
    d = ex.design("q1b", "1d-1", "quick", "lr", lo=1e-3, hi=1.0, count=30, scale="log")
    v = d.values
    assert len(v) == 30 and v[0] == 1e-3 and v[-1] == 1.0 and d.log_x
    ratios = [b / a for a, b in zip(v, v[1:])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3) == pytest.approx(1000 ** (1 / 29), rel=1e-3)
    lin = ex.design("q1b", "1d-1", "quick", "components", lo=1, hi=9, count=5, scale="linear").values
    assert lin == [1, 3, 5, 7, 9]
    with pytest.raises(ex.ExperimentError, match="learning rate = 100"):
        ex.design("q1b", "1d-1", "quick", "lr", values=[0.1, 100])        # over the field's bound of 10
    with pytest.raises(ex.ExperimentError, match="above 0"):
        ex.design("q1b", "1d-1", "quick", "lr", lo=0, hi=1, count=3, scale="log")
    with pytest.raises(ex.ExperimentError, match="no setting"):
        ex.design("q1b", "1d-1", "quick", "nope", values=[1])


def _ran(runs, seconds=1.0):
    """A store that has seen a q1b quick run take `seconds` (what sizing reads)."""
    from core.engine import RunSpec

    rid = runs.submit(RunSpec("q1b", "1d-1", {}, preset="quick"), start=False)
    runs.set_status(rid, state="done", started=100.0, ended=100.0 + seconds)
    return rid


def test_only_an_instructor_starts_or_ends_it_and_it_is_sized_to_finish(runs):
    d = ex.design("q1b", "1d-1", "quick", "lr", **LRS)
    with pytest.raises(ex.ExperimentError, match="no q1b quick run has finished"):
        ex.start(runs, d, slots=2, instructor=True)
    _ran(runs, 4.0)
    with pytest.raises(ex.ExperimentError, match="only an instructor"):
        ex.start(runs, d, slots=2, instructor=False)
    assert ex.current(runs) is None
    assert ex.start(runs, d, slots=2, instructor=True).expected_s == 8.0   # ceil(4 / 2) x 4 s
    with pytest.raises(ex.ExperimentError, match="only an instructor"):
        ex.stop(runs, instructor=False)
    big = ex.design("q1b", "1d-1", "quick", "lr", lo=1e-3, hi=1.0, count=30, scale="log", limit_s=30)
    with pytest.raises(ex.ExperimentError, match=r"30 runs of about 4 s each on 2 slots take about 1.0 min, over "):
        ex.start(runs, big, slots=2, instructor=True)
    assert ex.current(runs).values == d.values                             # the refused one changed nothing
    ex.stop(runs, instructor=True)
    assert ex.current(runs) is None


def test_values_are_dealt_in_turn_and_a_second_join_keeps_the_first(runs):
    _ran(runs)
    d = ex.start(runs, ex.design("q1b", "1d-1", "quick", "lr", values=[0.01, 0.1, 1.0]), 2, instructor=True)
    got = [ex.join(runs, f"b:{n}", n) for n in ("amy", "bo", "cy", "di")]
    assert got == [0.01, 0.1, 1.0, 0.01]
    assert ex.join(runs, "b:bo", "bo") == 0.1
    assert ex.joined(runs)["b:cy"] == {"name": "cy", "value": 1.0, "runs": []}
    picked = ex.start(runs, ex.design("q1b", "1d-1", "quick", "lr", values=[0.01, 0.1], deal="pick"), 2, True)
    assert picked.deal == "pick" and ex.join(runs, "b:amy", "amy") is None
    assert ex.join(runs, "b:amy", "amy", pick=0.1) == 0.1
    with pytest.raises(ex.ExperimentError, match="pick one"):
        ex.join(runs, "b:bo", "bo", pick=0.5)
    assert d.values == [0.01, 0.1, 1.0]


@pytest.fixture
def trained(runs):
    """Two learners of a 2-value experiment (q1b quick, 2 epochs) trained their runs, in this process."""
    _ran(runs)
    ex.start(runs, ex.design("q1b", "1d-1", "quick", "lr", values=[0.003, 0.3]), 2, instructor=True)
    ids = {}
    for who in ("amy", "bo"):
        value = ex.join(runs, f"b:{who}", who)
        rid = ex.train(runs, f"b:{who}", lambda spec: runs.submit(spec, start=False))
        assert worker.main(str(runs.dir(rid))) == 0
        ids[value] = rid
    return runs, ids


def test_a_learners_run_is_their_own_with_their_value_and_the_shared_preset(trained):
    runs, ids = trained
    spec = runs.spec(ids[0.3])
    assert spec.owner == "b:bo" and spec.hparams["lr"] == 0.3 and spec.preset == "quick" and spec.seed == 0
    assert runs.spec(ids[0.003]).hparams == {**spec.hparams, "lr": 0.003}
    with pytest.raises(ex.ExperimentError, match="already in"):
        ex.train(runs, "b:bo", lambda spec: runs.submit(spec, start=False))
    with pytest.raises(ex.ExperimentError, match="join the experiment first"):
        ex.train(runs, "b:cy", lambda spec: runs.submit(spec, start=False))


def _tests(runs, rid):
    return [e["loss"] for e in map(json.loads, (runs.dir(rid) / "events.jsonl").read_text().splitlines())
            if e["type"] == "test"]


def test_the_chart_holds_each_runs_curve_and_final_loss_by_value_and_names_for_instructors_only(trained):
    runs, ids = trained
    data = ex.chart(runs, instructor=True)
    assert [c["value"] for c in data["curves"]] == [0.003, 0.3]
    for c in data["curves"]:
        assert c["y"] == _tests(runs, ids[c["value"]]) and len(c["y"]) == 11   # before training + 10 epochs
    finals = {p["value"]: p["loss"] for p in data["points"]}
    assert finals == {v: _tests(runs, rid)[-1] for v, rid in ids.items()}
    assert [m["value"] for m in data["medians"]] == [0.003, 0.3] and data["medians"][0]["loss"] == finals[0.003]
    assert finals[0.3] < finals[0.003]                       # the larger rate learns more in 10 epochs
    assert data["counts"] == {"done": 2, "running": 0, "waiting": 0, "failed": 0, "not trained": 0}
    assert data["reference"] == 2.555 and data["unit"] == "nats/dim"
    assert {p["name"] for p in data["points"]} == {"amy", "bo"}
    learner = ex.chart(runs, instructor=False)
    assert {p["name"] for p in learner["points"]} == {""} and {c["name"] for c in learner["curves"]} == {""}
    table = ex.csv_text(data, instructor=True).splitlines()
    assert table[0] == "lr,final test loss (nats/dim),learner" and len(table) == 3
    assert table[1].startswith("0.003,") and math.isclose(float(table[1].split(",")[1]), finals[0.003], rel_tol=1e-5)
    assert "amy" not in ex.csv_text(learner)


def test_the_drain_estimate_is_rounds_of_slots_times_a_run():
    assert ex.expected_drain_s(30, 2, 1.5) == 22.5 and ex.expected_drain_s(31, 2, 1.5) == 24.0
