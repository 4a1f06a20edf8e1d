"""What a new learner's walk found: the live monitor says what a run is doing while it does it (core.eta.phase on
a run's events), Home and Q1 agree on where to start, the Report tells its progress step by step and says how to
make what is missing in the app, and its pickers put the loss (with its unit) first."""
import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from core import eta


def _one_epoch(t0=0.0):
    """A 1-epoch run (a fine-tune): its start and the untrained model's test, 20 minibatches an epoch."""
    return [{"type": "start", "t": t0, "epochs": 1, "steps_per_epoch": 20},
            {"type": "test", "t": t0 + 2, "epoch": 0, "loss": 3.0}]


def _trained(t0=0.0):
    """The 1-epoch run once its only epoch is over (minibatches, the test, the epoch's end at t0 + 50)."""
    return _one_epoch(t0) + [{"type": "train", "t": t0 + 4, "step": 1, "loss": 2.9},
                             {"type": "train", "t": t0 + 42, "step": 20, "loss": 2.1},
                             {"type": "test", "t": t0 + 50, "epoch": 1, "loss": 2.0},
                             {"type": "epoch", "t": t0 + 50, "epoch": 1, "seconds": 48.0}]


def _rows(t0, *rows):
    """The final samples' progress events (Q2's words): row r of 20 at t0 + 5 r."""
    return [{"type": "progress", "t": t0 + 5 * r, "frac": r / 20, "msg": f"drawing 100 samples: row {r} of 20"}
            for r in rows]


# ------------------------------------------------------------------------------------------------ core.eta.phase
def test_a_one_epoch_run_says_epoch_1_of_1_and_its_minibatches_while_it_trains():
    events = _one_epoch() + [{"type": "train", "t": 4.0, "step": 1}, {"type": "train", "t": 12.0, "step": 5}]
    now = eta.phase(events, now=12.0)
    assert now.text.startswith("epoch 1 of 1 · minibatch 5 of 20"), now.text
    assert now.frac == pytest.approx(5 / 20)
    # its only epoch has not ended, yet the minibatches' pace says how long: 2 s each since the test, 15 to go
    assert "under a minute of training left (from the minibatches so far)" in now.text
    assert "epoch 0" not in now.text


def test_the_first_scoring_and_the_scoring_that_ends_an_epoch_are_said():
    first = eta.phase([{"type": "start", "t": 0.0, "epochs": 4, "steps_per_epoch": 10}], now=1.0)
    assert first.text == "epoch 1 of 4 · first scoring the untrained model on the test set" and first.frac == 0.0
    events = [{"type": "start", "t": 0.0, "epochs": 2, "steps_per_epoch": 10, "test_sample": 500},
              {"type": "test", "t": 1.0, "epoch": 0}, {"type": "train", "t": 5.0, "step": 10},
              {"type": "test", "t": 6.0, "epoch": 1}, {"type": "epoch", "t": 6.0, "epoch": 1}]
    assert eta.phase(events, now=7.0).text == ("epoch 1 of 2 done · under a minute of training left (from the "
                                               "epochs so far)")   # between epochs
    scoring = eta.phase(events + [{"type": "train", "t": 11.0, "step": 20}], now=12.0)
    # the last epoch scores the whole test set (the others a sample): said, since it takes longer
    assert scoring.text.startswith("epoch 2 of 2 · scoring the test set (the whole of it, after the last epoch)")
    assert scoring.frac == 1.0


def test_the_final_samples_show_as_their_own_phase_never_as_an_overrun_estimate():
    done = _trained()
    now = eta.phase(done, now=80.0)   # epochs over, the question's final work not yet reporting
    assert now.text == "its one epoch trained · finishing the run (its results, samples and model)"
    now = eta.phase(done + _rows(50, 1, 7), now=86.0)
    assert now.text.startswith("its one epoch trained · drawing 100 samples: row 7 of 20"), now.text
    assert now.frac == pytest.approx(7 / 20)
    # at the rows' pace (6 rows in 30 s), 13 rows to go, 1 s of them spent: about 64 s
    assert now.text.endswith("about 1 min left"), now.text
    assert "estimate" not in now.text
    many = eta.phase([{**e, "epochs": 10} if e["type"] == "start" else e for e in done + _rows(50, 1)], now=60.0)
    assert many.text.startswith("epoch 1 of 10 done · drawing 100 samples: row 1 of 20 · about")   # not over: 9 to go


def test_an_epoch_slower_than_the_others_says_so_and_no_estimate_is_said_while_not_running():
    events = [{"type": "start", "t": 0.0, "epochs": 3, "steps_per_epoch": 10}, {"type": "test", "t": 0.0, "epoch": 0},
              {"type": "train", "t": 9.0, "step": 10}, {"type": "test", "t": 10.0, "epoch": 1},
              {"type": "epoch", "t": 10.0, "epoch": 1}, {"type": "train", "t": 40.0, "step": 15}]
    slow = eta.phase(events, now=45.0)   # 10 s an epoch, 2 to go, 35 s into the second
    assert slow.text == "epoch 2 of 3 · minibatch 5 of 10 · this epoch is taking longer than the ones before it"
    assert eta.phase(events, now=45.0, clock=False).text == "epoch 2 of 3 · minibatch 5 of 10"


def test_before_training_and_without_epochs_the_latest_progress_is_the_phase():
    assert eta.phase([], now=0.0) is None
    tokens = [{"type": "log", "msg": "worker 1"}, {"type": "progress", "frac": 0.4, "msg": "tokenizing the train set"}]
    assert eta.phase(tokens, now=0.0) == eta.Phase(0.4, "tokenizing the train set")
    race = [{"type": "progress", "frac": 1.7, "msg": "step 9 of 8"}]
    assert eta.phase(race, now=0.0).frac == 1.0   # kept in the bar's range
    after = tokens + [{"type": "start", "epochs": 2, "steps_per_epoch": 5}, {"type": "test", "epoch": 0}]
    assert eta.phase(after, now=0.0).text.startswith("epoch 1 of 2 · minibatch 0 of 5")   # the old phase is over


def test_time_left_words_say_nothing_at_zero():
    assert eta.text(0.0) == "" and eta.text(None) == "" and eta.text(30) == "under a minute left"
    assert eta.text(240) == "about 4 min left" and eta.text(7200) == "about 2.0 h left"


def test_a_runs_shared_view_keeps_what_the_phase_needs_in_order_and_bounded(tmp_path):
    from core.engine.stream import EventView

    events = _trained() + _rows(50, *range(1, 21))
    many = [{"type": "train", "t": 5 + i / 100, "step": i} for i in range(2, 19)]
    events = events[:3] + many + events[3:]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    timing = EventView("r", path).refresh().timing
    kinds = [e["type"] for e in timing]
    assert kinds == ["start", "test", "train", "train", "test", "epoch", "progress", "progress"], kinds
    assert timing[3]["step"] == 20 and timing[-1]["msg"] == "drawing 100 samples: row 20 of 20"
    assert eta.phase(timing, now=150.0) == eta.phase(events, now=150.0)


# ------------------------------------------------------------------------------------------------ the live monitor
@pytest.fixture
def running(runs_dir, monkeypatch):
    """running(events) -> the status bar texts the run monitor shows for a running run that recorded them."""
    from core.engine.runs import RunStore as Store
    from core.lab import RunSpec, store as RunStore

    monkeypatch.setattr(Store, "recover", lambda self: [])    # no worker behind this run: do not judge it dead

    def show(events):
        store = RunStore(runs_dir)
        rid = store.submit(RunSpec("q2a", "shapes", {}), start=False)
        store.set_status(rid, state="running", started=time.time() - 100, began=time.time() - 100)
        (runs_dir / rid / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

        def script(rid):
            import ui

            ui.run_monitor(rid, compare_link=False)

        at = AppTest.from_function(script, default_timeout=60, kwargs={"rid": rid}).run()
        assert not at.exception, [e.value for e in at.exception]
        return [p.proto.text for p in at.get("progress")]

    return show


def test_the_monitor_shows_the_final_samples_row_by_row(running):
    t0 = time.time() - 100
    texts = running(_trained(t0) + _rows(t0 + 50, 1, 7))
    assert len(texts) == 1 and "drawing 100 samples: row 7 of 20" in texts[0], texts
    assert "over its estimate" not in texts[0] and "epoch 0" not in texts[0]


def test_the_monitor_says_epoch_1_of_1_during_the_only_epoch(running):
    t0 = time.time() - 20
    texts = running(_one_epoch(t0) + [{"type": "train", "t": t0 + 4, "step": 1}, {"type": "train", "t": t0 + 12,
                                                                                    "step": 7}])
    assert len(texts) == 1 and texts[0].startswith("epoch 1 of 1 · minibatch 7 of 20"), texts


# ------------------------------------------------------------------------------------------------ Home and Q1
def test_home_names_the_preset_the_q1_page_opens_on(runs_dir):
    from tests.conftest import open_page

    q1 = open_page("pages/q1_1d.py")
    opens_on = q1.radio(key="q1a:1d-1:preset").value
    home = open_page("pages/home.py")
    words = " ".join(m.value for m in home.markdown)
    assert f"keep the preset it opens on, **{opens_on}**" in words, words
    assert f"keep the **{'quick' if opens_on != 'quick' else 'homework'}** preset" not in words


def test_the_q1_page_redraws_its_curve_as_often_as_its_status_while_a_run_trains(runs_dir, monkeypatch):
    """A Q1 run is over in seconds: with the monitor's usual 10 s between curve redraws, its curve appeared only once
    the run was done."""
    import ui
    from tests.conftest import open_page

    asked = []
    real = ui.run_monitor
    monkeypatch.setattr(ui, "run_monitor", lambda *a, **k: (asked.append(k.get("body_every", ui.BODY_EVERY)),
                                                            real(*a, **k))[1])
    open_page("pages/q1_1d.py")
    assert len(asked) == 2 and all(every <= ui.STATUS_EVERY for every in asked), asked


# ------------------------------------------------------------------------------------------------ the Report
def test_the_report_build_tells_every_step_k_of_n(runs_dir, tmp_path):
    from core import report
    from core.lab import RunSpec
    from core.questions import get
    from tests.conftest import run_in_process

    rid = run_in_process(runs_dir, RunSpec("q1a", "1d-1", get("q1a").preset("quick")))
    told = []
    items = report.build({("q1a", "1d-1"): f"run:{rid}", ("q1b", "1d-1"): ""}, tmp_path / "out", runs_dir,
                         progress=lambda k, n, what: told.append((k, n, what)))
    steps = [k for k, _, _ in told]
    n = 1 + len(report.figure_names("q1a", "1d-1")) + 2   # the run, its figures, the summary, the write-up
    assert {m for _, m, _ in told} == {n} and steps == sorted(steps) and steps[0] == 1 and steps[-1] == n, told
    whats = [w for *_, w in told]
    assert f"q1a on 1d-1: reading run:{rid}" in whats and "q1a on 1d-1: drawing q1_a_dset1_train_plot.png" in whats
    assert whats[-1].startswith("writing the write-up")
    assert sorted(items[0].figures) == sorted(report.figure_names("q1a", "1d-1")) and items[1].missing


def test_the_report_page_says_how_to_make_what_is_missing_in_the_app(runs_dir, monkeypatch):
    from core import checkpoints
    from tests.conftest import open_page

    monkeypatch.setattr(checkpoints, "manifest", lambda path=None: [])   # nothing shipped: every item is missing
    at = open_page("pages/report.py")
    next(b for b in at.button if b.label == "Build the report").click().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    told = [c for c in captions if c.startswith("To make what is missing")]
    assert told and not any("python -m core" in c for c in told), told
    assert ("To make what is missing: on the Q1 · 1-D data page, make a Histogram run on 1d-1 with the quick "
            "preset, then build the report again.") in told


def test_the_reports_pickers_put_the_loss_and_its_unit_first(runs_dir):
    from core import report
    from tests.test_compare import _fake_finished

    rid = _fake_finished(runs_dir, "q1a", "1d-1", 2.5506)
    assert report.source_label("q1a", f"run:{rid}", runs_dir) == f"2.5506 nats/dim · run:{rid}"
    assert report.source_label("q1a", "", runs_dir) == "(leave out)"
    assert report.source_label("q3c", "run:nosuchrun", runs_dir) == "run:nosuchrun"   # a race: no test loss
