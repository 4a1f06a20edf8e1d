"""Every page, rendered as the server renders it (app.py, its sidebar, then the page): no text on it names a place on
the server (the runs folder, the data cache, the repository, /tmp/, the home folder), whatever the page shows: the
Runs page with a finished run open (its monitor, scrubber and downloads), each question page with that run, the Data
sets page on every data set."""
import re
from pathlib import Path

import pytest
from google.protobuf import text_format

from tests.conftest import ROOT, open_page, run_in_process

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))
ANN = "0123456789abcdef"


@pytest.fixture(autouse=True)
def through_app_py(monkeypatch):
    """AppTest runs a switched-to page file alone (Streamlit's pages-folder mode, set again before every run): these
    tests run every page inside app.py, as a server does after its first st.navigation."""
    from streamlit.runtime.pages_manager import PagesManager

    made = PagesManager.__init__

    def as_served(self, *args, **kwargs):
        made(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", as_served)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Ann's finished Q1 run (trained in this process), in a runs folder of the module's."""
    from core.engine import RunSpec
    from core.questions import get

    runs = tmp_path_factory.mktemp("every-page") / "runs"
    rid = run_in_process(runs, RunSpec("q1a", "1d-1", {**get("q1a").preset("quick"), "epochs": 2}, preset="quick",
                                       owner=f"b:{ANN}", owner_name="Ann"))
    return runs, rid


def server_places(runs: Path) -> set[str]:
    from core.data import cache_dir

    return {str(runs), str(runs.resolve()), str(cache_dir()), str(cache_dir().resolve()), str(ROOT), "/tmp/",
            str(Path.home()) + "/"}


def rendered_text(at) -> str:
    """Everything the page sent to the browser: every element's and block's fields (text, labels, help, options,
    tables, chart specs), as text."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "DESCRIPTOR"):
            out.append(text_format.MessageToString(proto, as_utf8=True))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def assert_no_server_path(at, runs: Path):
    text = rendered_text(at)
    found = {p: [m.start() for m in re.finditer(re.escape(p), text)][:3] for p in server_places(runs)}
    found = {p: [text[max(0, i - 80):i + 80] for i in at_] for p, at_ in found.items() if at_}
    assert not found, found


def open_as_ann(page, runs, monkeypatch, query=None, instructor=False):
    monkeypatch.setenv("ARLAB_RUNS_DIR", str(runs))
    return open_page(page, ANN, query, instructor, name="Ann", timeout=180)


@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_a_server_path(finished_run, monkeypatch, page):
    runs, rid = finished_run
    query = {"run": rid} if page == "pages/runs.py" else {"q1a.run": rid} if page == "pages/q1_1d.py" else {}
    at = open_as_ann(page, runs, monkeypatch, query, instructor=page == "pages/board.py")
    if page == "pages/runs.py":   # open everything the run offers: the scrubber, the downloads
        assert any("Take it home" in e.label for e in at.expander) and rid in rendered_text(at)
    assert_no_server_path(at, runs)


def _data_sets():
    from core import data

    return list(data.NAMES)


@pytest.mark.parametrize("name", _data_sets())
def test_the_data_sets_page_shows_no_server_path_for_any_set(finished_run, monkeypatch, name):
    runs, _ = finished_run
    at = open_as_ann("pages/data_sets.py", runs, monkeypatch)
    at.selectbox(key="data:name").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    assert_no_server_path(at, runs)
