"""The class server, second pass: one learner's disk or clicks cannot cost another learner their work or their turn.
Each test plays a hostile or careless classmate against the real engine (a fake launcher: no worker processes)."""
import json
import time

import pytest

from core.engine import RunSpec
from tests.test_classroom import fake_store, finish, submit


def _fill(store, rid, mb: float):
    (store.root / rid / "big.bin").write_bytes(b"\0" * int(mb * 2**20))


def test_one_learners_runs_never_get_a_classmates_finished_runs_pruned(tmp_path):
    store, launcher = fake_store(tmp_path, slots=8, owner_running=None, owner_queued=None, keep_days=0,
                                 keep_gb=3.5 * 2**20 / 2**30)         # room for about three runs of 1 MB
    alice = [submit(store, "alice") for _ in range(2)]
    for rid in alice:
        finish(store, launcher, rid)
        _fill(store, rid, 1)
    mallory = []
    for _ in range(3):                                                   # later runs, each as big as Alice's
        rid = submit(store, "mallory")
        finish(store, launcher, rid)
        _fill(store, rid, 1)
        mallory.append(rid)
    gone = store.prune()
    assert set(alice) <= set(store.ids())                              # Alice keeps every run
    assert gone == mallory[:2]                                         # Mallory's oldest go, until it fits
    assert store.disk_use()["mallory"] < 1.1 * 2**20 and store.disk_use()["alice"] > 2 * 2**20


def test_a_run_others_trained_on_is_neither_pruned_nor_deleted_from_under_them(tmp_path):
    store, launcher = fake_store(tmp_path, slots=8, owner_running=None, owner_queued=None, keep_days=0, keep_gb=0)
    tok = submit(store, "ann")                                         # stands for Ann's tokenizer run
    finish(store, launcher, tok)
    bob = submit(store, "bob")
    spec = json.loads((store.root / bob / "spec.json").read_text())   # Bob's Q4b/Q6 run names it, as theirs do
    spec["hparams"]["tokenizer"] = f"run:{tok}"
    (store.root / bob / "spec.json").write_text(json.dumps(spec))
    store._changed()
    finish(store, launcher, bob)
    store.policy.keep_gb = 1e-12                                       # every finished run is over the budget
    assert store.prune() == [bob]                                      # Bob's own run goes; the one it needs stays
    assert tok in store.ids()
    bob = submit(store, "bob")
    spec = json.loads((store.root / bob / "spec.json").read_text())
    (store.root / bob / "spec.json").write_text(json.dumps({**spec, "init": f"run:{tok}"}))   # continued from it
    store._changed()
    with pytest.raises(RuntimeError, match="1 run of other learners was trained on this one"):
        store.delete(tok)                                              # by its owner: refused, with the reason
    assert tok in store.ids()
    finish(store, launcher, bob)
    store.delete(bob)
    store.delete(tok)                                                  # nobody depends on it now
    assert tok not in store.ids()


def test_a_run_cancelled_while_its_cluster_job_vanished_is_never_started_again(tmp_path):
    store, launcher = fake_store(tmp_path)
    launcher.cluster = True                                            # a Ray-like launcher: vanished jobs requeue
    rid = submit(store, "ann")
    assert store.status(rid)["state"] == "running" and not store.status(rid).get("began")
    assert store.cancel(rid) == "cancelling"
    launcher.live.discard(rid)                                         # its job vanished before the worker began
    for _ in range(4):
        store.pump()
    st = store.status(rid)
    assert st["state"] == "cancelled" and not st.get("requeued"), st
    assert launcher.started == [rid]                                   # started once, never again
    other = submit(store, "bob")                                       # and the queue moves on
    assert store.status(other)["state"] == "running"


def test_in_server_work_is_one_job_per_learner_and_a_classmate_goes_before_a_second_tab():
    import threading

    from core.limiter import FairGate

    gate, order, lock = FairGate(1), [], threading.Lock()
    assert gate.try_acquire("mallory")                              # Mallory's first tab builds a report
    started = []

    def job(owner):
        started.append(owner)
        assert gate.acquire(owner, timeout=10)
        with lock:
            order.append(owner)
        gate.release(owner)

    threads = [threading.Thread(target=job, args=("mallory",)) for _ in range(4)]   # four more tabs of hers
    for t in threads:
        t.start()
    deadline = time.time() + 5
    while gate.waiting() < 4 and time.time() < deadline:
        time.sleep(0.01)
    bob = threading.Thread(target=job, args=("bob",))                # Bob presses Sample after all of them
    bob.start()
    while gate.waiting() < 5 and time.time() < deadline:
        time.sleep(0.01)
    assert not gate.try_acquire("ann")                               # a slot is busy: nobody jumps in
    gate.release("mallory")
    for t in threads + [bob]:
        t.join(10)
    assert order[0] == "bob" and order.count("mallory") == 4, order  # Bob first, then her tabs, one at a time


def test_a_learner_waiting_too_long_gives_up_and_frees_the_queue():
    from core.limiter import FairGate

    gate = FairGate(1)
    assert gate.try_acquire("a")
    assert gate.acquire("b", timeout=0.05) is False and gate.waiting() == 0
    gate.release("a")
    assert gate.try_acquire("b")


@pytest.mark.parametrize("name", ["Prоf Smith", "Dг. Lee", "ТА Kim", "Іnstructor", "Аdmin", "ΤΑ Kim", "Dr̈ Who",
                                  "ＰＲＯＦ x", "you", "You", "this machine", "someone", "Someone else"])
def test_a_name_cannot_pass_for_a_role_or_the_labs_own_words_in_look_alike_letters(name):
    from ui.identity import clean_name

    with pytest.raises(ValueError):
        clean_name(name)


@pytest.mark.parametrize("name", ["Ada Lovelace", "Анна Петрова", "Ζωή", "José", "O'Neil", "Tad", "Youssef",
                                  "Prosper", "Drew", "Tamsin", "Lee 2"])
def test_real_names_in_any_one_alphabet_stay_names(name):
    from ui.identity import clean_name

    assert clean_name(name) == name


def test_concurrent_share_presses_make_one_token_and_stop_sharing_ends_old_links(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store, launcher = fake_store(tmp_path)
    rid = submit(store, "ada")
    finish(store, launcher, rid)
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: store.share(rid), range(8)))
    assert len(tokens) == 1 and all(len(t) >= 20 for t in tokens)        # eight presses, one token, never empty
    token = tokens.pop()
    assert store.may_view(rid, "b:bob", token=token)
    store.unshare(rid)
    assert not store.may_view(rid, "b:bob", token=token)               # the old link opens nothing now
    assert not store.may_view(rid, "b:bob", token="")
    again = store.share(rid)
    assert again != token and store.may_view(rid, "b:bob", token=again)
    assert not [p for p in (tmp_path / rid).iterdir() if p.name.startswith(".share")]   # no leftovers


@pytest.mark.parametrize("page,prefix", [("pages/q1_1d.py", "q1a."), ("pages/q5_poetry.py", "q5.")])
@pytest.mark.parametrize("seed", ["1" * 30, "-5", "2147483648", "1e9", "٣"])
def test_a_crafted_seed_in_a_link_is_refused_in_words_and_the_page_works(runs_dir, page, prefix, seed):
    from tests.conftest import open_page

    at = open_page(page, "bob", {f"{prefix}seed": seed})           # fails on any exception the page raised
    assert any("The link's seed" in w.value and "0 to 2147483647" in w.value for w in at.warning)
    assert seed not in " ".join(w.value for w in at.warning)         # the link's value is not echoed back
    assert any(n.label == "seed" and n.value == 0 for n in at.number_input)


def test_a_report_item_whose_files_vanished_says_why_without_a_server_path(runs_dir, tmp_path):
    """A finished run's saved files are deleted (in another tab, or pruned) while the Report draws it: every
    reason it gives (the page, summary.json, writeup.md) names the file, never the server's path."""
    from core import report

    store, launcher = fake_store(runs_dir)
    rid = store.submit(RunSpec("q2a", "shapes", {"epochs": 1}, owner="ada", owner_name="ada"))
    finish(store, launcher, rid)          # done, with a test loss; its samples.npy is gone when the build draws it
    store.set_status(rid, result={"test_loss": 0.05, "unit": "nats/dim"})
    items = report.build({("q2a", "shapes"): f"run:{rid}"}, tmp_path / "out", runs_root=runs_dir)
    reasons = [why for it in items for why in it.missing.values()]
    assert reasons, "the vanished files are listed as missing"
    written = (tmp_path / "out" / "summary.json").read_text() + (tmp_path / "out" / "writeup.md").read_text()
    for text in reasons + [written]:
        assert str(runs_dir) not in text and "/tmp" not in text and str(tmp_path) not in text, text


def test_every_reason_is_pathless_whatever_it_wraps():
    from core.engine.worker import failure_reason
    from core.reasons import pathless

    e = FileNotFoundError(2, "No such file or directory", "/srv/lab/runs/20261204-x/samples.npy")
    assert failure_reason(e) == "FileNotFoundError: No such file or directory: samples.npy"
    assert pathless(f"no samples saved ({e})") == "no samples saved ([Errno 2] No such file or directory: 'samples.npy')"
    assert pathless("2.55 nats/dim after 1/2 of the run") == "2.55 nats/dim after 1/2 of the run"
    assert "/home" not in pathless("see /home/ada/.cache/arlab/data/mnist.npz and ~/x/y")


def test_a_report_of_shipped_checkpoints_is_built_once_for_the_class(runs_dir, monkeypatch):
    """The build from shipped checkpoints alone is the same for everyone with the same seed: the second learner
    (and a second tab) get the first build at once, without taking the server's work slot again."""
    from core import report
    from tests.conftest import open_page

    builds = []

    def fake_build(picks, out, runs_root=None, seed=0, progress=None, explain=None):
        builds.append((tuple(sorted(picks.items())), seed))
        for name in ("summary.json", "writeup.md", "writeup.pdf"):
            (out / name).write_text("{}" if name.endswith(".json") else "x")
        return []

    import streamlit as st

    monkeypatch.setattr(report, "build", fake_build)
    try:
        for who in ("ada", "bob", "ada"):
            at = open_page("pages/report.py", who)
            next(b for b in at.button if b.label == "Build the report").click().run()
            assert not at.exception and any("figures made" in c.value for c in at.caption)
        assert len(builds) == 1 and all(src.startswith("pretrained:") or not src for _, src in builds[0][0])
        at.number_input(key="report:seed").set_value(1).run()          # another seed: another build
        next(b for b in at.button if b.label == "Build the report").click().run()
        assert len(builds) == 2
    finally:
        st.cache_resource.clear()   # the fake builds must not be served to a later test in this process


def test_a_share_token_is_read_once_kept_for_its_run_and_taken_out_of_the_link(runs_dir):
    """Bob opens Ada's shared run, then trains his own: his address no longer carries Ada's token, while he can
    still open her run in this session; Ada's Stop sharing ends the link."""
    from core.lab import RunSpec, store as make
    from tests.conftest import open_page, run_in_process

    rid = run_in_process(runs_dir, RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ada", owner_name="ada"))
    store = make(runs_dir)
    token = store.share(rid)
    bob = open_page("pages/q1_1d.py", "bob", {"q1a.run": rid, "share": token})
    assert "share" not in bob.query_params and not any("not yours" in w.value for w in bob.warning)
    assert bob.session_state["_shares"] == {rid: token}              # for that run only
    runs = open_page("pages/runs.py", "bob", {"run": rid, "share": token})
    assert "share" not in runs.query_params and not any("not yours" in w.value for w in runs.warning)
    ada = open_page("pages/runs.py", "ada", {"run": rid})
    next(b for b in ada.button if b.label == "Stop sharing").click().run()
    assert not store.shared(rid)
    late = open_page("pages/runs.py", "carol", {"run": rid, "share": token})
    assert any("not yours to open" in w.value for w in late.warning)


def test_the_runs_page_says_how_much_disk_a_learners_runs_take(runs_dir):
    from core.lab import RunSpec
    from tests.conftest import open_page, run_in_process

    rid = run_in_process(runs_dir, RunSpec("q1a", "1d-1", {"epochs": 1}, owner="b:ada", owner_name="ada"))
    (runs_dir / rid / "big.bin").write_bytes(b"\0" * 3 * 2**20)
    ada = open_page("pages/runs.py", "ada")
    assert any(c.value.startswith("Your runs take 3.") and "MB" in c.value for c in ada.caption)
    bob = open_page("pages/runs.py", "bob")
    assert not any("Your runs take 3." in c.value for c in bob.caption)   # Ada's use is not Bob's
    prof = open_page("pages/runs.py", "prof", instructor=True)
    rows = next(d.value for d in prof.dataframe if "learner" in d.value.columns)
    assert list(rows["learner"]) == ["ada"] and rows["MB"].iloc[0] >= 3
