"""Comparing runs, scrubbing through one, taking it home: core.compare and the Runs page (AppTest)."""
import csv
import io
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import compare

from tests.conftest import run_in_process

ROOT = Path(__file__).resolve().parent.parent


def finished_run(runs_dir, question, dataset, hp):
    from core.lab import RunSpec
    from core.questions import get

    return run_in_process(runs_dir, RunSpec(question, dataset, {**get(question).preset("quick"), **hp},
                                            preset="quick"))


@pytest.fixture
def two_q1_runs(runs_dir):
    return [finished_run(runs_dir, "q1a", "1d-1", {"epochs": 3, "lr": lr}) for lr in (0.1, 0.02)]


@pytest.fixture
def q3_run(runs_dir):
    """A tiny colour iGPT run with a 4-image preview after each of its 2 epochs."""
    return finished_run(runs_dir, "q3b", "shapes-colored", {"d_model": 16, "heads": 2, "layers": 1, "epochs": 2,
                                                             "data_fraction": 0.02, "preview_samples": 4,
                                                             "test_sample": 100})


def test_smooth_is_a_debiased_moving_average():
    assert compare.smooth([1.0, 3.0], 0.0).tolist() == [1.0, 3.0]
    assert compare.smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])   # no pull towards 0
    s = compare.smooth([0.0, 10.0], 0.5)
    assert s[1] == pytest.approx((0.5 * 0.5 * 0 + 0.5 * 10) / (1 - 0.25))
    with pytest.raises(ValueError):
        compare.smooth([1.0], 1.0)


def test_series_settings_and_csv_of_real_runs(two_q1_runs, runs_dir):
    from core.lab import store as RunStore

    store = RunStore(runs_dir)
    s = compare.series(store, two_q1_runs[0])
    assert len(s.test) == 4 and len(s.train) == len(s.train_t) == len(s.train_epoch) > 0
    assert s.unit == "nats/dim" and s.train_t == sorted(s.train_t) and s.train_epoch[-1] == pytest.approx(3)
    rows, differ = compare.settings_table([store.spec(r) for r in two_q1_runs], two_q1_runs)
    assert differ == {"lr"}
    lr = next(r for r in rows if r["setting"] == "lr")
    assert (lr[two_q1_runs[0]], lr[two_q1_runs[1]]) == ("0.1", "0.02")
    table = list(csv.reader(io.StringIO(compare.curve_csv(s))))
    assert table[0][-1] == "loss (nats/dim)"
    assert sum(r[0] == "train" for r in table) == len(s.train) and sum(r[0] == "test" for r in table) == 4
    assert float(table[-1][-1]) == s.test[-1]


def test_frames_follow_the_epoch_artifacts():
    arts = [{"kind": "images", "name": "samples_epoch2", "npy": "b.npy"},
            {"kind": "images", "name": "samples_epoch1", "npy": "a.npy", "captions": ["x"]},
            {"kind": "images", "name": "samples", "npy": "s.npy"},
            {"kind": "images", "name": "recon_epoch1", "npy": "r.npy"}]
    f = compare.frames(arts, [3.0, 2.0], "samples_epoch")
    assert [(x["epoch"], x["npy"], x["test_loss"]) for x in f] == [(1, "a.npy", 2.0), (2, "b.npy", None)]
    assert f[0]["captions"] == ["x"]
    assert compare.frame_prefixes(arts) == ["samples_epoch", "recon_epoch"]


def test_every_per_epoch_name_scrubs_old_q2_names_too():
    from core.context import epoch_name, parse_epoch_name

    assert parse_epoch_name(epoch_name("preview", 3)) == ("preview", 3)
    assert parse_epoch_name("preview_e003") == ("preview", 3)                 # runs saved before the rule
    assert parse_epoch_name("samples") is None and parse_epoch_name("model") is None
    arts = [{"kind": "images", "name": "preview_e002", "npy": "b.npy"},
            {"kind": "images", "name": "preview_epoch1", "npy": "a.npy"}]
    assert compare.frame_prefixes(arts) == ["preview_epoch"]
    assert [f["epoch"] for f in compare.frames(arts, [], "preview_epoch")] == [1, 2]


def test_a_q2_run_with_previews_scrubs(runs_dir):
    rid = finished_run(runs_dir, "q2a", "shapes", {"filters": 8, "kernel_size": 3, "layers": 1, "epochs": 2,
                                                    "batch_size": 32, "subset": 64})
    at = _runs_page({"run": rid})
    slider = at.select_slider(key=f"scrub:runs:{rid}:preview_epoch")
    assert slider.value == 2
    slider.set_value(1)
    at.run()
    assert not at.exception
    assert any(c.value.startswith("after epoch 1 · test loss") for c in at.caption)


def _fake_finished(runs_dir, question, dataset, loss):
    """A run folder that reads as finished with this test loss (and a model file), without training."""
    from core.lab import RunSpec, store as RunStore

    store = RunStore(runs_dir)
    rid = store.submit(RunSpec(question, dataset, {}, preset="quick"), start=False)
    store.set_status(rid, state="done", result={"test_loss": loss, "unit": "nats/dim"})
    (runs_dir / rid / "model.safetensors").write_bytes(b"")
    return rid


def test_pickers_default_to_the_shipped_model_then_the_best_run(runs_dir):
    import time

    from core import checkpoints, sources

    slow = _fake_finished(runs_dir, "q1a", "1d-1", 2.70)
    time.sleep(0.01)
    good = _fake_finished(runs_dir, "q1a", "1d-1", 2.55)
    time.sleep(0.01)
    newest = _fake_finished(runs_dir, "q1a", "1d-1", 2.60)
    opts = sources.best_first(sources.choices("q1a", "1d-1", runs_dir), runs_dir)
    assert [s for s, _ in opts] == [f"run:{good}", f"run:{newest}", f"run:{slow}"]   # nothing shipped: the best
    assert opts[0][1].endswith("· best") and opts[1][1].endswith("· newest") and "best" not in opts[2][1]
    if checkpoints.find(name="q2a-shapes"):
        rid = _fake_finished(runs_dir, "q2a", "shapes", 0.001)
        opts = sources.best_first(sources.choices(("q2a", "q2b"), "shapes", runs_dir), runs_dir)
        assert opts[0][0] == "pretrained:q2a-shapes" and "best" not in opts[0][1]   # shipped first, even if beaten
        assert opts[1] == (f"run:{rid}", opts[1][1]) and opts[1][1].endswith("· best · newest")


def _runs_page(query=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/runs.py")
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_runs_page_compares_two_runs(two_q1_runs, runs_dir):
    at = _runs_page()
    before = len(at.get("plotly_chart"))
    at.multiselect(key="runs:compare").set_value(two_q1_runs)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == before + 1                 # the overlaid curves
    table = next(df.value for df in at.dataframe if df.value.index.name == "setting")
    assert list(table.columns) == two_q1_runs and table.loc["lr"].tolist() == ["0.1", "0.02"]
    assert not any("different questions" in w.value for w in at.warning)


def test_by_unit_groups_runs_by_the_unit_of_their_loss_not_their_question():
    def e(rid, q, unit=None):
        return {"id": rid, "spec": {"question": q}, "status": {"result": {"unit": unit} if unit else None}}

    units = {"q1a": "nats/dim", "q1b": "nats/dim", "q4a": "mse"}.get
    assert compare.by_unit([e("a", "q1a", "nats/dim"), e("b", "q1b")], units) == {"nats/dim": ["a", "b"]}
    assert compare.by_unit([e("a", "q1a"), e("c", "q4a")], units) == {"nats/dim": ["a"], "mse": ["c"]}


def test_runs_page_compares_q1a_with_q1b(runs_dir):
    ids = [finished_run(runs_dir, q, "1d-1", {"epochs": 1}) for q in ("q1a", "q1b")]
    at = _runs_page()
    before = len(at.get("plotly_chart"))
    at.multiselect(key="runs:compare").set_value(ids)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("not in one unit" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == before + 1


def test_a_compare_link_opens_the_runs_page_with_the_run_picked(two_q1_runs, runs_dir):
    at = _runs_page({"compare": two_q1_runs[1], "run": two_q1_runs[1]})
    assert at.multiselect(key="runs:compare").value == [two_q1_runs[1]]
    assert at.selectbox(key="runs:pick").value == two_q1_runs[1]


def test_scrubbing_changes_the_grid_shown_and_downloads_are_offered(q3_run, runs_dir, tmp_path):
    at = _runs_page({"run": q3_run})
    slider = at.select_slider(key=f"scrub:runs:{q3_run}:samples_epoch")
    assert slider.value == 2
    assert any(c.value.startswith("after epoch 2 · test loss") for c in at.caption)
    slider.set_value(1)
    at.run()
    assert not at.exception
    assert any(c.value.startswith("after epoch 1 · test loss") for c in at.caption)
    assert not any(c.value.startswith("after epoch 2") for c in at.caption)
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"curve (CSV)", "samples (PNG)", "checkpoint (safetensors)", "events (JSON lines)"} <= labels
    assert any("load_checkpoint" in c.value for c in at.code)
    # the checkpoint it offers loads through the notebook's call, from a downloaded file
    import shutil

    from core.homework import load_checkpoint

    path = tmp_path / "model.safetensors"
    shutil.copy(runs_dir / q3_run / "model.safetensors", path)
    model, config = load_checkpoint(str(path))
    assert config["question"] == "q3b" and sum(p.numel() for p in model.parameters()) > 0


def test_board_takes_the_best_finished_run_of_each_question_and_set():
    def e(rid, q, ds, loss, who, state="done"):
        return {"id": rid, "spec": {"question": q, "dataset": ds, "owner_name": who},
                "status": {"state": state, "result": {"test_loss": loss, "unit": "nats/dim"}}}

    rows = compare.board([e("a", "q2a", "shapes", 0.05, "ann"), e("b", "q2a", "shapes", 0.04, "bob"),
                          e("c", "q2a", "shapes", 0.01, "cy", state="cancelled"), e("d", "q1a", "1d-1", 2.6, "")],
                         lambda q, ds: 0.042 if q == "q2a" else None)
    assert [(r["question"], r["best test loss"], r["by"], r["finished runs"]) for r in rows] == \
        [("q1a", 2.6, "this machine", 1), ("q2a", 0.04, "bob", 2)]
    assert rows[1]["vs reference"] == pytest.approx(-0.002) and rows[0]["reference"] is None


def test_class_board_is_off_until_the_instructor_turns_it_on(two_q1_runs, runs_dir):
    from ui.identity import Me

    def session(who):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["me"] = who
        at.run()
        at.switch_page("pages/board.py")
        at.run()
        assert not at.exception, [x.value for x in at.exception]
        return at

    learner, teacher = Me("b:1", "ann"), Me("b:2", "teacher", instructor=True)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        session(learner)                                        # off: the page is not even in the navigation
    at = session(teacher)
    at.toggle[0].set_value(True).run()
    assert (runs_dir / ".board-on").exists()
    rows = session(learner).dataframe[0].value
    assert list(rows["question"]) == ["q1a"] and rows["finished runs"][0] == 2


def test_time_left_follows_the_measured_epochs_on_a_fake_clock():
    from core import eta

    events = [{"type": "start", "t": 100.0, "epochs": 5, "steps_per_epoch": 10},
              {"type": "test", "t": 102.0, "epoch": 0, "loss": 3.0}]
    assert eta.time_left(events, now=150.0) is None and eta.text(None) == ""      # nothing measured yet
    events += [{"type": "train", "t": 130.0, "loss": 2.0}, {"type": "test", "t": 160.0, "epoch": 1, "loss": 2.0},
               {"type": "epoch", "t": 162.0, "epoch": 1, "seconds": 58.0}]
    assert eta.time_left(events, now=162.0) == pytest.approx(4 * 60.0)            # 60 s an epoch, 4 to go
    assert eta.time_left(events, now=192.0) == pytest.approx(4 * 60.0 - 30)       # half an epoch since
    assert eta.text(eta.time_left(events, now=192.0)) == "about 4 min left"
    events += [{"type": "epoch", "t": 262.0, "epoch": 2, "seconds": 95.0}]        # slower: previews counted too
    assert eta.time_left(events, now=262.0) == pytest.approx(3 * 80.0)
    assert eta.time_left([{"type": "start", "epochs": 3}, {"type": "epoch", "epoch": 1, "seconds": 20.0}],
                         now=0) == pytest.approx(40.0)                            # no time stamps: the seconds
    assert eta.time_left(events + [{"type": "epoch", "t": 400.0, "epoch": 5}], now=500.0) == 0.0


def test_the_run_monitor_says_the_time_left_after_the_first_epoch(runs_dir, monkeypatch):
    import json
    import time

    from core.engine.runs import RunStore as Store
    from core.lab import RunSpec, store as RunStore

    monkeypatch.setattr(Store, "recover", lambda self: [])    # no worker behind this run: do not judge it dead
    store = RunStore(runs_dir)
    rid = store.submit(RunSpec("q1a", "1d-1", {}), start=False)
    now = time.time()
    store.set_status(rid, state="running", started=now - 130, began=now - 130)
    recorded = [{"type": "start", "t": now - 130, "epochs": 4, "steps_per_epoch": 2},
                {"type": "test", "t": now - 125, "epoch": 0, "loss": 3.0},
                {"type": "train", "t": now - 100, "step": 1, "epoch": 0.5, "loss": 2.5},
                {"type": "train", "t": now - 75, "step": 2, "epoch": 1.0, "loss": 2.4},
                {"type": "test", "t": now - 66, "epoch": 1, "loss": 2.4},
                {"type": "epoch", "t": now - 65, "epoch": 1, "seconds": 59.0}]
    (runs_dir / rid / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in recorded))

    def script():
        import ui

        ui.run_monitor(ui.store().ids()[0], compare_link=False)

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [p.proto.text for p in at.get("progress")]
    assert any(t.startswith("epoch 1 of 4 done · about 2 min of training left") for t in texts), texts   # 3 x 60 - 65 s


def test_preset_times_come_from_the_measured_table():
    from core import eta

    eta_q2 = eta.quick_time("q2a", "shapes")
    assert eta_q2 == f"about {round(eta.QUICK_SECONDS[('q2a', 'shapes')] / 60)} min on 2 idle CPU cores"
    assert eta.quick_time("q6", "mnist-v2") == eta.quick_time("q6")          # any data set
    assert eta.quick_time("q2a", "mnist") is None                            # not measured: no number made up


def test_a_live_curve_is_held_against_the_course_and_the_shipped_models_training():
    """The course's number as a dashed line with its unit, the shipped model's per-epoch test losses (kept in its
    manifest entry) as a faint trace; nothing in another unit."""
    from core import compare, viz

    g = compare.guide("q4b", "mnist-v2", "nats/token")
    assert g["shipped_name"] == "q4b-mnist-v2" and g["shipped"][0][0] == 0 and len(g["shipped"]) == 9
    assert compare.guide("q1a", "1d-1", "nats/dim")["reference"] == 2.562
    assert compare.guide("q1a", "1d-1", "bits/dim") == {"reference": None, "shipped": [], "shipped_name": ""}
    fig = viz.loss_curve([3.0, 2.8], [3.0, 2.7], 2, unit="nats/dim", reference=2.562, shipped=[[0, 3.1], [1, 2.6]],
                         shipped_name="q1a-x")
    assert [s.line.dash for s in fig.layout.shapes] == ["dash"] and fig.layout.shapes[0].y0 == 2.562
    assert "course: 2.562 nats/dim" in [a.text for a in fig.layout.annotations]
    assert "q1a-x (test, as it trained)" in [t.name for t in fig.data]
    assert not viz.loss_curve([3.0], [3.0], 1).layout.shapes   # without them: no line


def test_the_run_monitors_chart_holds_the_course_line(runs_dir):
    import json as _json

    from streamlit.testing.v1 import AppTest

    from core.engine import Policy, RunSpec
    from core.lab import store as make_store
    from ui.identity import Me

    store = make_store(runs_dir, policy=Policy(slots=1))
    rid = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ann", owner_name="ann"), start=False)
    store.set_status(rid, state="done", result={"test_loss": 2.6, "unit": "nats/dim", "probs": [0.05] * 20})
    (runs_dir / rid / "events.jsonl").write_text("".join(_json.dumps(e) + "\n" for e in (
        {"type": "start", "steps_per_epoch": 2, "epochs": 1, "t": 1.0}, {"type": "test", "epoch": 0, "loss": 3.0},
        {"type": "train", "step": 2, "epoch": 1.0, "loss": 2.8}, {"type": "test", "epoch": 1, "loss": 2.6})))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.session_state["me"] = Me("b:ann", "ann")
    at.run()
    at.switch_page("pages/q1_1d.py").run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("course: 2.562 nats\\u002fdim" in s for s in specs), specs[:1]
