"""What a new learner's walk through the Runs page, the sidebar, the downloads and the scrubber found: the sidebar on
every page in every state where the page stops early, curve CSVs without repeated rows, a run picker that follows the
run shown and the runs' states, an instructor's Runs page that opens on everyone's runs, a share link that is a link,
the scrubber's words and epochs for a finished and a continued run, and image grids whose tiles are one size."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import compare
from core.questions import get
from tests.conftest import ROOT, open_page, run_in_process

ANN, BOB = "0123456789abcdef", "fedcba9876543210"
NAME_FIELD, KEY_FIELD = "Name shown on your runs", "Instructor key"


@pytest.fixture(autouse=True)
def through_app_py(monkeypatch):
    """AppTest runs a switched-to page file alone (Streamlit's old pages-folder mode, which it sets again before
    every run since the repository has a pages/ folder): no app.py, so no sidebar. A running server leaves that mode
    for good at its first st.navigation; so do these tests, so every run goes through app.py as a browser's does."""
    from streamlit.runtime.pages_manager import PagesManager

    made = PagesManager.__init__

    def as_served(self, *args, **kwargs):
        made(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", as_served)


def served(page, who=None, query=None, instructor=False):
    """The app in AppTest on `page` (app.py: its navigation and sidebar, then the page) as learner `who` (None: a
    new guest), with `query` in its link."""
    return open_page(page, who, query, instructor, name="Ann" if who == ANN else "Bob")


def assert_sidebar(at, key_field=True):
    """The whole sidebar: who you are, the name field, the instructor key (for a learner, where the server has one),
    your runs, the queue and the device."""
    md = [m.value for m in at.sidebar.markdown]
    fields = [t.label for t in at.sidebar.text_input]
    assert any(m.startswith("**You:**") for m in md), md
    assert any(m.startswith("**Your runs:**") for m in md) and any(m.startswith("**Queue:**") for m in md), md
    assert any(c.value.startswith("**Device:**") for c in at.sidebar.caption)
    assert NAME_FIELD in fields and (KEY_FIELD in fields) == key_field, fields


def finished(runs_dir, who, question="q1a", dataset="1d-1", loss=2.6):
    """A run of `who` that reads as finished (no training: the pages only list it)."""
    from core.lab import RunSpec, store

    runs = store(runs_dir)
    rid = runs.submit(RunSpec(question, dataset, get(question).preset("quick"), preset="quick", owner=f"b:{who}",
                              owner_name="Ann" if who == ANN else "Bob"), start=False)
    runs.set_status(rid, state="done", result={"test_loss": loss, "unit": get(question).unit})
    return rid


# ----------------------------------------------------------------------------------------------- the sidebar
@pytest.fixture
def key_env(runs_dir, monkeypatch):
    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "a-key-for-the-test")
    return runs_dir


def test_the_runs_page_of_a_new_learner_keeps_the_sidebar(key_env):
    at = served("pages/runs.py", ANN)
    assert any("No runs yet" in i.value for i in at.info)           # the page stopped here
    assert_sidebar(at)


def test_a_locked_link_on_the_runs_page_keeps_the_sidebar(key_env):
    bobs = finished(key_env, BOB)
    at = served("pages/runs.py", ANN, {"run": bobs})
    assert any("not yours to open" in w.value for w in at.warning)
    assert_sidebar(at)


def test_the_instructors_runs_page_with_no_runs_keeps_the_sidebar(key_env):
    at = served("pages/runs.py", ANN, instructor=True)
    assert any("No runs yet" in i.value for i in at.info)
    assert_sidebar(at, key_field=False)


def test_the_report_page_before_build_keeps_the_sidebar(key_env):
    at = served("pages/report.py", ANN)
    assert any("Build the report" in i.value for i in at.info)
    assert_sidebar(at)


def test_the_class_board_with_no_finished_runs_keeps_the_sidebar(key_env):
    at = served("pages/board.py", ANN, instructor=True)
    assert any("No finished runs yet" in i.value for i in at.info)
    assert_sidebar(at, key_field=False)


PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_that_stops_at_its_first_line_keeps_the_sidebar(key_env, monkeypatch, page):
    """The class of the fault: whatever makes a page stop (st.stop) and wherever, the sidebar is there. Every page
    calls ui.in_app() first; here it stops the page right there."""
    import ui

    def stop_here():
        st.markdown("stopped at the first line")
        st.stop()

    monkeypatch.setattr(ui, "in_app", stop_here)
    at = served(page, ANN, instructor=page == "pages/board.py")
    assert [m.value for m in at.main.markdown] == ["stopped at the first line"]
    assert_sidebar(at, key_field=page != "pages/board.py")


def test_the_sidebar_counts_a_run_the_page_just_queued(runs_dir):
    """Drawn before the page, the counts are drawn again after it: a press of Train shows in them at once."""
    at = served("pages/q1_1d.py", ANN)
    assert "**Your runs:** 0 running · 0 waiting · 0 done" in [m.value for m in at.sidebar.markdown]
    next(b for b in at.button if b.label == "Train Histogram").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from core.lab import store

    runs = store(runs_dir)
    rid = runs.ids()[0]
    runs.cancel(rid)
    md = [m.value for m in at.sidebar.markdown]
    assert not any(m.startswith("**Your runs:** 0 running · 0 waiting") for m in md), md
    assert sum(m.startswith("**Your runs:**") for m in md) == 1, md    # one line, redrawn in its place


# ----------------------------------------------------------------------------------------------- a continued Q2 run
TINY_Q2 = {"filters": 8, "kernel_size": 3, "layers": 1, "batch_size": 8, "subset": 64, "test_sample": 100}


@pytest.fixture(scope="module")
def q2_chain(tmp_path_factory):
    """Ann's tiny Q2 run of 2 epochs, the run that continues it 2 more ("Train 2 more epochs"), and a run of one
    epoch, each trained in this process: (runs folder, first, continued, one-epoch run)."""
    from core.engine import RunSpec

    runs = tmp_path_factory.mktemp("walk") / "runs"

    def spec(epochs):
        return RunSpec("q2a", "shapes", {**get("q2a").preset("quick"), **TINY_Q2, "epochs": epochs}, preset="quick",
                       owner=f"b:{ANN}", owner_name="Ann")

    from core.lab import store

    first = run_in_process(runs, spec(2))
    more = run_in_process(runs, compare.continue_spec(store(runs).spec(first), 2, first))
    one = run_in_process(runs, spec(1))
    return runs, first, more, one


def test_the_curve_csv_of_a_continued_run_holds_each_recorded_point_once(q2_chain, monkeypatch):
    """The download is the run's own events, each once, with the step and epoch they recorded, however the bounded
    view the pages draw has averaged its points (here once it holds 8: each run has 16)."""
    import csv
    import io

    from core.engine import stream
    from core.lab import store

    runs, first, more, _ = q2_chain
    monkeypatch.setattr(stream, "POINTS", 4)
    stream._views.clear()
    for rid in (first, more):
        compare.series(store(runs), rid)              # the pages' view of it, read (and averaged) first
        rows = list(csv.reader(io.StringIO(compare.curve_csv(compare.recorded(store(runs), rid)))))
        events = store(runs).events(rid)[0]
        assert len({tuple(r) for r in rows}) == len(rows), [r for r in rows if rows.count(r) > 1]
        test = [e for e in events if e["type"] == "test"]
        assert [int(r[2]) for r in rows if r[0] == "test"] == [e["epoch"] for e in test] == [0, 1, 2]
        assert [float(r[4]) for r in rows if r[0] == "test"] == [e["loss"] for e in test]
        train = [e for e in events if e["type"] == "train"]
        assert [(int(r[1]), float(r[2])) for r in rows if r[0] == "train"] == \
            [(e["step"], pytest.approx(e["epoch"], rel=1e-5)) for e in train]
    stream._views.clear()


# ----------------------------------------------------------------------------------------------- the run picker
class Waiting:
    """A launcher that starts nothing (the run stays queued until the test runs its worker in this process)."""
    name, cluster = "test", False

    def start(self, run_dir, threads, env=None):
        from core.engine.spawn import LauncherUnavailable

        raise LauncherUnavailable("not in this test")

    def alive(self, run_dir, handle):
        return False

    def stop(self, run_dir, handle):
        pass


def _picker(at):
    """The run the picker names, as the browser shows it (the label of its option)."""
    sb = at.selectbox(key="runs:pick")
    return sb.options[sb.index]


def test_the_picker_names_the_continued_run_shown_and_follows_its_state(runs_dir):
    """After "Train N more epochs" the page shows the new run, and the picker names it (it named the old one, and
    a later rerun then showed the old run again); when the run ends the picker's label says done, with its loss."""
    import ui
    from core.engine import worker
    from core.lab import RunSpec, store

    rid = run_in_process(runs_dir, RunSpec("q1a", "1d-1", {**get("q1a").preset("quick"), "epochs": 1},
                                           preset="quick", owner=f"b:{ANN}", owner_name="Ann"))
    ui.store().launcher = Waiting()
    at = served("pages/runs.py", ANN, {"run": rid})
    assert _picker(at).startswith(rid)
    next(n for n in at.number_input if n.label == "more epochs").set_value(1).run()
    next(b for b in at.button if b.label == "Train 1 more epochs").click().run()
    assert not at.exception, [e.value for e in at.exception]
    new = next(r for r in store(runs_dir).ids() if r != rid)
    status = next(m.value for m in at.markdown if "· run `" in m.value)
    assert new in status and _picker(at).startswith(new) and "queued" in _picker(at)
    at.run()                                              # a later rerun (the monitor's) keeps showing it
    assert new in next(m.value for m in at.markdown if "· run `" in m.value) and _picker(at).startswith(new)
    assert worker.main(str(runs_dir / new)) == 0          # it runs and ends
    at.run()
    label = _picker(at)
    assert label.startswith(new) and " · done · " in label and "nats/dim" in label, label
    assert "✅ **done**" in next(m.value for m in at.markdown if "· run `" in m.value)
    at.selectbox(key="runs:pick").set_value(rid).run()    # picking another run opens it, and the link says so
    assert rid in next(m.value for m in at.markdown if "· run `" in m.value) and at.query_params["run"] == rid


# ----------------------------------------------------------------------------------------------- the instructor
def test_an_instructors_runs_page_opens_on_everyones_runs(runs_dir):
    bobs = [finished(runs_dir, BOB) for _ in range(2)]
    at = served("pages/runs.py", ANN, instructor=True)
    assert at.radio(key="runs:scope").value == "everyone's"
    assert not any("No runs yet" in i.value for i in at.info)
    assert set(at.selectbox(key="runs:pick").options) and all(any(o.startswith(b) for o in
                                                                  at.selectbox(key="runs:pick").options) for b in bobs)
    at.radio(key="runs:scope").set_value("yours").run()
    said = " ".join(i.value for i in at.info)
    assert "None of yours yet" in said and "2 runs by others" in said and "everyone's" in said, said


# ----------------------------------------------------------------------------------------------- the share link
def _shared(runs_dir, monkeypatch, context=None, headers=None):
    from ui import identity
    from ui.identity import Me

    rid = finished(runs_dir, ANN)
    if headers is not None:
        monkeypatch.setattr(identity, "_headers", lambda: dict(headers))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["me"] = Me(f"b:{ANN}", "Ann")
    at.context.update(context or {})
    at.run()
    at.switch_page("pages/runs.py")
    at.query_params["run"] = rid
    at.run()
    next(b for b in at.button if b.label == "Share this run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    token = store_of(runs_dir).share(rid)
    return rid, token, [c.value for c in at.code if "share=" in c.value], " ".join(c.value for c in at.caption)


def store_of(runs_dir):
    from core.lab import store

    return store(runs_dir)


def test_the_share_link_is_the_full_address_the_browser_reached(runs_dir, monkeypatch):
    rid, token, codes, said = _shared(runs_dir, monkeypatch, {"url": "https://lab.example.org/class/runs"})
    assert codes == [f"https://lab.example.org/class/runs?run={rid}&share={token}"], codes
    assert "add it after" not in said.lower()


def test_the_share_link_from_the_request_headers(runs_dir, monkeypatch):
    rid, token, codes, _ = _shared(runs_dir, monkeypatch, headers={"host": "lab.example.org:8501",
                                                                   "x-forwarded-proto": "https"})
    assert codes == [f"https://lab.example.org:8501/runs?run={rid}&share={token}"], codes


@pytest.mark.parametrize("host", ["", "evil.example/<b>x</b>", "a b"])
def test_without_an_address_the_share_link_says_plainly_what_goes_before_it(runs_dir, monkeypatch, host):
    rid, token, codes, said = _shared(runs_dir, monkeypatch, headers={"host": host} if host else {})
    assert codes == [f"runs?run={rid}&share={token}"], codes
    assert "Put the app's address before it" in said and "before `runs`" in said


# ----------------------------------------------------------------------------------------------- compare settings
def test_the_compare_settings_never_cut_a_settings_name(runs_dir):
    """The settings' names column is as wide as its longest name (it cut "components" to "compo…" at 1280 px)."""
    import json

    ids = [finished(runs_dir, ANN, "q1b") for _ in range(2)]
    at = served("pages/runs.py", ANN)
    at.multiselect(key="runs:compare").set_value(ids).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df for df in at.dataframe if df.value.index.name == "setting")
    names = json.loads(table.proto.columns)["_index"]
    assert names["width"] >= 24 + 8 * max(len(k) for k in table.value.index) >= 24 + 8 * len("components")


# ----------------------------------------------------------------------------------------------- the scrubber
def test_a_finished_runs_scrubber_says_it_is_finished(q2_chain, monkeypatch):
    runs, _, _, one = q2_chain
    monkeypatch.setenv("ARLAB_RUNS_DIR", str(runs))
    at = served("pages/runs.py", ANN, {"run": one})
    said = [c.value for c in at.caption]
    assert "This run kept samples after one epoch (epoch 1)." in said, said
    assert not any("so far" in c or "as the run goes on" in c for c in said), said


def test_a_continued_runs_scrubber_counts_epochs_as_its_curve_does(q2_chain, monkeypatch):
    """The chain's curve counts epochs 0-4 across both runs; the scrubber's slider and caption count the same way
    (and say which of the run's own epochs that is)."""
    import json

    runs, first, more, _ = q2_chain
    monkeypatch.setenv("ARLAB_RUNS_DIR", str(runs))
    at = served("pages/runs.py", ANN, {"run": more})
    curve = json.loads(at.get("plotly_chart")[-1].proto.spec)                # the run's curve: the chain's
    assert [sh["x0"] for sh in curve["layout"]["shapes"] if sh["line"]["dash"] == "dot"] == [2]
    assert compare.chained(store_of(runs), more)[0].test_epoch == [0, 1, 2, 3, 4]
    slider = at.select_slider(key=f"scrub:runs:{more}:preview_epoch")
    assert slider.options == ["3", "4"] and slider.value == 2
    assert any(c.value.startswith("after epoch 4 (this run's 2nd) · test loss") for c in at.caption)
    slider.set_value(1).run()
    assert any(c.value.startswith("after epoch 3 (this run's 1st) · test loss") for c in at.caption)
    first_page = served("pages/runs.py", ANN, {"run": first})              # a run that continues none: as before
    assert first_page.select_slider(key=f"scrub:runs:{first}:preview_epoch").options == ["1", "2"]
    assert any(c.value.startswith("after epoch 2 · test loss") for c in first_page.caption)


# ----------------------------------------------------------------------------------------------- image grids
def test_every_tile_of_a_captioned_grid_is_one_size_whatever_its_caption(monkeypatch):
    """Q6's captioned panels: each image is drawn at its pixels' width (here 28 x 5 = 140 px), a long caption or a
    short one (drawn to fit its column, a tile took its caption's width: 168-218 px in one grid)."""
    import numpy as np
    from streamlit.delta_generator import DeltaGenerator

    drawn, image = [], DeltaGenerator.image

    def recorded(self, img, *args, **kwargs):
        drawn.append(kwargs.get("width", "content"))
        return image(self, img, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "image", recorded)

    def script():
        import numpy as np

        import ui

        ui.pairs_grid(np.zeros((9, 28, 28, 3), np.uint8),
                      ["a"] + ["plain white four on light orange, and more words than fit"] * 4 + ["b"] * 4,
                      marks=["✓", "✗"] * 4 + ["✓"])

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) == 9 and drawn == [28 * 5] * 9, drawn
    assert np.asarray(drawn).dtype.kind == "i"


# ----------------------------------------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """The real app (bench.server.App, a runs folder of its own) and a fresh Chromium page at 1280 x 720."""
    from pathlib import Path

    from bench.server import CHROMIUM, App, chromium

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (bash lab.sh test installs it as root)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with App(tmp_path_factory.mktemp("walk-browser") / "runs", timeout=240, env={"ARLAB_WARM_TOKENS": "0"}) as app:
        with sync_playwright() as p:
            b = chromium(p)
            try:
                yield app.url, b.new_context(viewport={"width": 1280, "height": 720}).new_page()
            finally:
                b.close()


@pytest.mark.browser
def test_in_the_browser_a_stopped_page_keeps_its_sidebar_and_grid_tiles_are_one_size(browser_page):
    url, page = browser_page
    page.goto(url + "/runs", wait_until="networkidle")                 # a new learner: the page stops early
    page.get_by_text("No runs yet").first.wait_for(timeout=90_000)
    side = page.locator('[data-testid="stSidebar"]')
    side.get_by_text("Queue:").first.wait_for(timeout=30_000)
    assert side.get_by_role("button", name="Your name").count() == 1
    page.goto(url + "/data_sets", wait_until="networkidle")
    picker = page.locator('[data-testid="stSelectbox"]').first
    picker.click(timeout=90_000)
    page.keyboard.type("mnist-v2")
    page.keyboard.press("Enter")
    page.get_by_text("Samples with their captions").wait_for(timeout=120_000)
    page.wait_for_timeout(2000)
    tiles = page.locator('[data-testid="stImage"] img')
    widths = {round(tiles.nth(i).bounding_box()["width"]) for i in range(12)}
    assert widths == {28 * 6}, widths                                  # the page's 4-a-row grid, scale 6
