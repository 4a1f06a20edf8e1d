"""A class server tried as a hostile or careless learner would: each numbered item of the threat list, reproduced the
way a learner would do it, and the refusal or the bound that now meets it.

1 one learner fills the queue · 2 one long run takes the server down · 3 learners read each other's work ·
4 names and links inject markup · 5 the instructor key leaves the server · 6 caps and budgets have gaps ·
7 free text reaches the file system.
"""
import json
import os
import time
from pathlib import Path

import pytest

from core.engine import InvalidSpec, Policy, QueueFull, RunSpec, stream
from core.engine.launcher import WORKER_SETTINGS, LocalProcessLauncher, worker_env
from core.lab import store as make_store
from tests.conftest import open_page

ROOT = Path(__file__).resolve().parent.parent


class NoLauncher:
    """Starts nothing; every started run stays 'alive' until told otherwise."""
    name = "none"

    def __init__(self):
        self.live = set()

    def start(self, run_dir, threads, env=None):
        self.live.add(Path(run_dir).name)
        return {"launcher": self.name, "rid": Path(run_dir).name}

    def alive(self, run_dir, handle):
        return (handle or {}).get("rid") in self.live

    def stop(self, run_dir, handle):
        self.live.discard((handle or {}).get("rid"))


def fake_store(root, **policy):
    return make_store(root, launcher=NoLauncher(),
                      policy=Policy(**{"slots": 1, "owner_running": 2, "owner_queued": 3, "queue_max": 200, **policy}))


_page = open_page   # tests/conftest.py


def _texts(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "warning", "info", "error", "success"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ 1. one learner fills the queue
def test_owner_less_runs_count_as_one_owner(tmp_path):
    store = fake_store(tmp_path)
    for _ in range(3):
        store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}), start=False)
    with pytest.raises(QueueFull, match="already have 3 runs waiting"):
        store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}), start=False)


def test_a_page_submission_always_carries_the_viewer_and_the_racer_hits_their_cap(runs_dir):
    """The race used to submit owner-less runs (201 queued in 3.5 s); through ui.submit every run is the viewer's:
    one starts, three wait, the fifth is refused, and the racer may cancel their own races."""
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        import ui
        from core.engine import Policy

        ui.store().policy = Policy(slots=1, owner_running=2, owner_queued=3, queue_max=200)
        ui.store().launcher = type("L", (), {"name": "none", "start": lambda *a, **k: {"rid": "x"},
                                             "alive": lambda *a: True, "stop": lambda *a: None})()
        out = []
        for _ in range(5):
            try:
                rid = ui.submit(ui.RunSpec("q3c", "shapes-colored", {"n_samples": 1}, label="race"))
                out.append(f"ok {rid} {ui.store().spec(rid).owner} {ui.can_change(rid)}")
            except ui.InvalidSpec as e:
                out.append("refused " + "; ".join(e.errors.values()))
        st.session_state["out"] = out

    at = AppTest.from_function(script, default_timeout=60)
    from ui.identity import Me

    at.session_state["me"] = Me("b:racer0000000000", "racer")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    out = at.session_state["out"]
    ok = [o for o in out if o.startswith("ok")]
    assert len(ok) == 4 and all(o.endswith("b:racer0000000000 True") for o in ok), out
    assert "already have 3 runs waiting" in out[4], out


def test_a_web_submission_without_an_owner_is_refused(runs_dir):
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        import ui
        from ui.identity import Me

        st.session_state["me"] = Me("", "nobody")
        try:
            ui.submit(ui.RunSpec("q1a", "1d-1", {"epochs": 1}))
            st.session_state["out"] = "accepted"
        except ui.InvalidSpec as e:
            st.session_state["out"] = str(e)

    at = AppTest.from_function(script, default_timeout=60).run()
    assert "does not know who you are" in at.session_state["out"]
    assert not any(p.name != ".lock" for p in Path(runs_dir).glob("*")) if Path(runs_dir).exists() else True


# ------------------------------------------------------------------------------------ 2. one long run, bounded
def test_a_long_run_writes_a_bounded_events_file(tmp_path):
    """8000 minibatches an epoch for 50 epochs (the careless Q1a on 1d-2 at batch size 1, shortened): at most
    1000 points an epoch and ARLAB_MAX_TRAIN_POINTS (20,000) in all, each the mean of its minibatches."""
    from core.engine.worker import RunContext

    (tmp_path / "r").mkdir()
    ctx = RunContext(tmp_path / "r")
    spe, epochs = 8000, 50
    ctx.emit("start", steps_per_epoch=spe, epochs=epochs)
    step, total = 0, 0.0
    for epoch in range(1, epochs + 1):
        for _ in range(spe):
            step += 1
            loss = (step % 7) * 0.5
            total += loss
            ctx.emit("train", step=step, epoch=step / spe, loss=loss, lr=1e-3)
        ctx.emit("test", epoch=epoch, loss=1.0)
    ctx.close()
    events = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    train = [e for e in events if e["type"] == "train"]
    assert 15_000 <= len(train) <= 20_000, len(train)
    per_epoch = max(sum(1 for e in train if epoch - 1 < e["epoch"] <= epoch) for epoch in range(1, epochs + 1))
    assert per_epoch <= 1000
    assert train[-1]["step"] == spe * epochs and sum(e["n"] for e in train) == spe * epochs
    assert abs(sum(e["loss"] * e["n"] for e in train) - total) < 1e-6 * total   # means, not samples
    assert (tmp_path / "r" / "events.jsonl").stat().st_size < 3_000_000
    assert [e["type"] for e in events].count("test") == epochs


def test_an_old_unthinned_file_is_read_into_one_bounded_shared_view(tmp_path):
    """A file written before thinning (one line per minibatch): every reader gets the same view, read once from
    where it was left, holding at most 2 x POINTS train points."""
    store = fake_store(tmp_path)
    rid = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ann"), start=False)
    n = 3 * stream.POINTS * 4
    with open(tmp_path / rid / "events.jsonl", "w") as f:
        f.write(json.dumps({"type": "start", "steps_per_epoch": n, "epochs": 1, "t": 0}) + "\n")
        f.writelines(json.dumps({"type": "train", "step": i + 1, "epoch": (i + 1) / n, "loss": 1.0, "t": i})
                     + "\n" for i in range(n))
    a = stream.shared(store, rid)
    b = stream.shared(store, rid)
    assert a is b and len(a.train) < 2 * stream.POINTS and a.steps_done == n
    with open(tmp_path / rid / "events.jsonl", "a") as f:
        f.write(json.dumps({"type": "test", "epoch": 1, "loss": 0.5, "t": n}) + "\n")
    offset = a.offset
    assert stream.shared(store, rid).test == [0.5] and a.offset > offset


def test_the_step_ceiling_refuses_in_validation_and_stops_a_run_that_reaches_it(monkeypatch):
    from core import questions
    from core.train import RunCancelled, TrainConfig, fit
    import torch

    with pytest.raises(ValueError, match="8,000,000 minibatches, over this server's ceiling of 5,000,000"):
        questions.validate("q1a", "1d-2", {"epochs": 1000, "batch_size": 1})
    questions.validate("q1a", "1d-2", {"epochs": 625, "batch_size": 1})   # 5,000,000: at the ceiling, allowed
    monkeypatch.setenv("ARLAB_MAX_STEPS", "50")
    model = torch.nn.Linear(2, 1)
    data = torch.randn(40, 2)
    with pytest.raises(RunCancelled, match="ceiling of 50 minibatches"):
        fit(model, lambda m, x: m(x).pow(2).mean(), data, data, TrainConfig(epochs=100, batch_size=4))


def test_the_form_says_a_setting_is_over_the_ceiling_before_train(runs_dir):
    at = _page("pages/q1_1d.py", "ann", {"dataset": "1d-2"})
    assert not any("ceiling" in w.value for w in at.warning)
    at.number_input(key="q1a:1d-2:homework:epochs").set_value(1000)
    at.number_input(key="q1a:1d-2:homework:batch_size").set_value(1)
    at.run()
    assert any("over this server's ceiling" in w.value for w in at.warning)


# ------------------------------------------------------------------------------------ 3. learners read each other's work
def test_listings_show_a_learner_only_their_runs_pinned_ones_and_no_owners(tmp_path):
    from core import sources

    store = fake_store(tmp_path, owner_queued=None)
    mine = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:bob"), start=False)
    theirs = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ann"), start=False)
    pinned = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:cat"), start=False)
    nobody = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}), start=False)
    store.pin(pinned)
    for rid in (mine, theirs, pinned, nobody):
        store.set_status(rid, state="done")
        (tmp_path / rid / "model.safetensors").write_bytes(b"x")
    seen = {r["id"] for r in sources.finished_runs("q1a", "1d-1", tmp_path, owner="b:bob")}
    assert seen == {mine, pinned, nobody}
    assert {s for s, _ in sources.choices("q1a", "1d-1", tmp_path, owner="b:bob")} == {f"run:{r}" for r in seen}
    assert len(sources.finished_runs("q1a", "1d-1", tmp_path)) == 4     # the command line, an instructor: all
    assert store.may_view(theirs, "b:ann") and not store.may_view(theirs, "b:bob")
    assert store.may_view(theirs, "b:bob", instructor=True)
    token = store.share(theirs)
    assert store.may_view(theirs, "b:bob", token=token) and not store.may_view(theirs, "b:bob", token=token[:-1] + "x")
    assert not store.may_view(theirs, "b:bob", token="é")   # a non-ASCII token is refused, not an error


def test_a_linked_run_opens_only_for_its_owner_or_with_a_share_token(runs_dir):
    store = make_store(runs_dir, launcher=NoLauncher(), policy=Policy(slots=1))
    rid = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ann", owner_name="ann"))
    store.set_status(rid, state="done", result={"test_loss": 2.6, "unit": "nats/dim"})
    (runs_dir / rid / "events.jsonl").write_text(json.dumps({"type": "test", "epoch": 0, "loss": 3.0}) + "\n")
    bob = _page("pages/runs.py", "bob", {"run": rid})
    assert "not yours to open" in _texts(bob)
    assert rid not in _texts(bob) and not bob.get("download_button")
    assert not _page("pages/q1_1d.py", "bob", {"q1a.run": rid}).get("plotly_chart")
    token = store.share(rid)
    shared = _page("pages/runs.py", "bob", {"run": rid, "share": token})
    assert "not yours to open" not in _texts(shared) and "ann's run" in _texts(shared)
    assert not [b for b in shared.button if b.label in ("Cancel", "Share this run")]
    ann = _page("pages/runs.py", "ann", {"run": rid})
    assert [b for b in ann.button if b.label == "Share this run"]


def test_a_page_may_not_submit_another_learners_run_as_its_model(runs_dir):
    from streamlit.testing.v1 import AppTest

    store = make_store(runs_dir, launcher=NoLauncher(), policy=Policy(slots=1))
    rid = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ann"), start=False)
    store.set_status(rid, state="done")

    def script():
        import streamlit as st

        import ui
        from ui.identity import Me

        st.session_state["me"] = Me("b:bob", "bob")
        rid = st.session_state["rid"]
        try:
            ui.submit(ui.RunSpec("q3c", "shapes-colored", {"checkpoint": f"run:{rid}", "n_samples": 1}))
            st.session_state["out"] = "accepted"
        except ui.InvalidSpec as e:
            st.session_state["out"] = str(e)

    at = AppTest.from_function(script, default_timeout=60)
    at.session_state["rid"] = rid
    at.run()
    assert "not yours to use" in at.session_state["out"]


# ------------------------------------------------------------------------------------ 4. names and links as plain text
def test_names_with_markup_are_refused_by_the_spec_and_escaped_on_pages(tmp_path):
    import ui

    store = fake_store(tmp_path)
    with pytest.raises(InvalidSpec, match="owner_name"):
        store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:x", owner_name="[Prof](http://evil.example)"))
    shown = ui.text("![x](http://evil.example/a.png) **bold** <b>tag</b> [Prof](http://evil.example)")
    for raw in ("![", "](", "**", "<b>", "http://"):
        assert raw not in shown
    assert shown.replace("\\", "") == "![x](http://evil.example/a.png) **bold** <b>tag</b> [Prof](http://evil.example)"


def test_a_links_values_are_not_echoed_as_markup(runs_dir):
    at = _page("pages/q1_1d.py", "ann", {"q1a.run": "**Your session expired** [sign in](http://evil.example)",
                                           "q1a.preset": "[click](http://evil.example)"})
    shown = _texts(at)
    assert "evil.example" not in shown and "session expired" not in shown
    assert "The link" in shown   # the learner is still told the link was bad


# ------------------------------------------------------------------------------------ 5. secrets stay on the server
def test_workers_get_only_the_allow_listed_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "s3cret")
    monkeypatch.setenv("ARLAB_DATA_DIR", "/data")
    env = worker_env(os.environ)
    assert "ARLAB_INSTRUCTOR_KEY" not in env and env["ARLAB_DATA_DIR"] == "/data"
    assert all(k in WORKER_SETTINGS for k in env)
    # the local launcher's real worker process: its environment has no key either
    seen = {}

    def fake_popen(cmd, env=None, **kw):
        seen.update(env)
        raise OSError("not started in this test")

    monkeypatch.setattr("subprocess.Popen", fake_popen)
    (tmp_path / "r").mkdir()
    with pytest.raises(OSError):
        LocalProcessLauncher().start(tmp_path / "r", 1)
    assert "ARLAB_INSTRUCTOR_KEY" not in seen and seen.get("ARLAB_DATA_DIR") == "/data"


# ------------------------------------------------------------------------------------ 6. caps and budgets
def test_the_wall_clock_budget_stops_gpu_runs_too(tmp_path):
    store = fake_store(tmp_path, budget_s=60)
    rid = store.submit(RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ann"))
    store.set_status(rid, device="cuda", started=time.time() - 61)
    store.pump()
    assert "budget" in (tmp_path / rid / "cancel").read_text()


# ------------------------------------------------------------------------------------ 7. free text never a path
def test_model_sources_are_never_paths_and_validation_creates_nothing(tmp_path):
    from core import sources

    store = fake_store(tmp_path / "runs")
    target = tmp_path / "some" / "dir"
    for bad in (f"run:{target}/x", "run:../x", "run:" + "1" * 300):
        with pytest.raises(InvalidSpec, match="checkpoint"):
            store.submit(RunSpec("q3c", "mnist-colored", {"checkpoint": bad}), start=False)
    assert not target.exists() and not (tmp_path / "runs").exists()
    for bad in ("run:../x", "run:/etc", "../x"):
        with pytest.raises(sources.SourceMissing, match="nor a run id|is shipped"):
            sources.config(bad if ":" in bad else f"run:{bad}", tmp_path / "runs")
    with pytest.raises(KeyError):
        store.dir("../" + "x")


def test_every_bad_value_is_an_invalid_spec(tmp_path):
    store = fake_store(tmp_path)
    cases = [("q1a", "1d-1", {"epochs": 10 ** 400}, "epochs"),
             ("q1a", "1d-1", {"lr": "9" * 5000}, "lr"),
             ("q4b", "mnist-colored", {"tokenizer": "x" * 100_000}, "tokenizer"),
             ("q1a", "1d-1", ["not", "a", "dict"], "hparams")]
    for q, ds, hp, field in cases:
        with pytest.raises(InvalidSpec) as e:
            store.submit(RunSpec(q, ds, hp), start=False)
        assert field in e.value.errors, e.value.errors
    with pytest.raises(InvalidSpec, match="label"):
        store.submit(RunSpec("q1a", "1d-1", {}, label="x" * 1000), start=False)
    assert not store.ids()
