"""Every page renders with Streamlit's AppTest; the Q1 page launches a run and refuses bad input."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py")
               if p.name not in ("ui.py", "questions_index.py", "__init__.py"))


def app(page=None):
    from ui.identity import Me

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if page == "pages/board.py":   # off by default: only an instructor has the page until one turns it on
        at.session_state["me"] = Me("b:0123456789abcdef", "teacher", instructor=True)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def test_home_renders(runs_dir):
    at = app()
    assert not at.exception
    assert "Autoregressive Lab" in at.title[0].value
    text = " ".join(m.value for m in at.markdown)
    assert "Where to start" in [h.value for h in at.subheader]
    assert "Give your name" in text and "Open Q1" in text and "What a quick run is for" in text
    assert "captions and images" in text                                     # the introduction names Q6 too


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exceptions(runs_dir, page):
    at = app(page)
    assert not at.exception, [e.value for e in at.exception]


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_q1_page_launches_a_run(runs_dir):
    from core.lab import store as RunStore

    at = app("pages/q1_1d.py")
    _button(at, "Train Histogram").click().run()
    assert not at.exception
    runs = RunStore(runs_dir).list()
    assert len(runs) == 1 and runs[0]["spec"]["question"] == "q1a"


def test_q1_page_refuses_out_of_range_values_and_launches_nothing(runs_dir):
    from core.lab import store as RunStore

    at = app("pages/q1_1d.py")
    lr = next(n for n in at.number_input if n.label == "learning rate" and "q1a" in n.key)
    lr.set_value(-5.0).run()
    _button(at, "Train Histogram").click().run()
    assert not at.exception
    assert any("learning rate" in e.value and "between" in e.value for e in at.error)
    assert RunStore(runs_dir).list() == []


def test_run_samples_draws_final_or_latest_grid_and_hints_while_running(runs_dir):
    import numpy as np

    from core.lab import RunSpec, store as RunStore

    rid = RunStore(runs_dir).submit(RunSpec("q1a", "1d-1", {}), start=False)
    np.save(RunStore(runs_dir).dir(rid) / "samples.npy", np.zeros((4, 2, 2, 1), np.uint8))

    def script():
        import numpy as np
        import streamlit as st

        import ui

        view, grid = ui.RunView(ui.store().ids()[0]), (lambda imgs, final: np.full((8, 8 * len(imgs), 3), 255 * final, np.uint8))
        ui.run_samples(view, {"state": "done"}, {"name": "samples", "npy": "samples.npy"}, grid)
        ui.run_samples(view, {"state": "running"}, {"name": "samples_epoch2", "npy": "samples.npy", "epoch": 2},
                       grid, note=" (note)")
        ui.run_samples(view, {"state": "running"}, None, grid)
        ui.run_samples(view, {"state": "done"}, None, grid)
        st.write("end")

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception
    captions = [[i.caption for i in e.proto.imgs] for e in at.get("image")]
    assert captions == [["4 final samples"], ["samples after epoch 2 (note)"]], captions
    assert [c.value for c in at.caption] == ["Samples appear here after every epoch."]  # only the running one
