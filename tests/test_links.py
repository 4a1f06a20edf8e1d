"""A page's settings live in its URL: a link restores them (with a banner), a bad value gets the widget's message
and the default, and changing a widget writes it back (so a reload restores the page as it was)."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def q2_page(query):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/q2_pixelcnn.py")
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_restores_data_set_preset_settings_and_seed(runs_dir):
    at = q2_page({"dataset": "shapes-colored", "q2b.preset": "quick", "q2b.lr": "0.005",
                  "q2b.seed": "3"})
    assert at.radio(key="q2:dataset").value == "shapes-colored"
    assert at.radio(key="q2b:shapes-colored:preset").value == "quick"
    assert at.number_input(key="q2b:shapes-colored:quick:lr").value == 0.005
    assert at.number_input(key="q2b:shapes-colored:seed").value == 3
    assert any("restored from the link" in i.value for i in at.info)


def test_no_link_note_without_a_link(runs_dir):
    at = q2_page({})                                    # opened from the menu: the page writes its preset itself
    assert not any("restored from the link" in i.value for i in at.info)
    at.slider(key="q2:rf:row").set_value(5)             # the next click reads that URL back: not a link either
    at.run()
    assert not any("restored from the link" in i.value for i in at.info)
    at.radio(key="q2:dataset").set_value("shapes-colored").run()
    at.radio(key="q2:dataset").set_value("shapes").run()
    assert not any("restored from the link" in i.value for i in at.info)


def test_bad_link_values_get_the_widgets_messages_and_the_defaults(runs_dir):
    from core.questions import get

    at = q2_page({"dataset": "cats", "q2a.preset": "quick", "q2a.lr": "fast", "q2a.epochs": "9999"})
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")   # shown as plain text: Markdown escaped
    assert "The link's data set: this page has shapes" in warnings and "cats" not in warnings   # not echoed
    assert "must be a number" in warnings and "between 1 and" in warnings and "9999" in warnings
    quick = get("q2a").preset("quick")
    assert at.radio(key="q2:dataset").value == "shapes"
    assert at.number_input(key="q2a:shapes:quick:lr").value == quick["lr"]
    assert at.number_input(key="q2a:shapes:quick:epochs").value == quick["epochs"]


def test_changing_a_setting_writes_it_into_the_link(runs_dir):
    at = q2_page({})
    assert at.query_params["dataset"] == "shapes" and at.query_params["q2a.preset"]
    preset = at.radio(key="q2a:shapes:preset").value
    at.number_input(key=f"q2a:shapes:{preset}:epochs").set_value(2)
    at.run()
    assert at.query_params["q2a.epochs"] == "2"
    assert "q2a.lr" not in at.query_params            # only what differs from the preset


def test_the_q4_page_takes_its_data_set_from_the_link(runs_dir):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/q4_vq.py")
    at.query_params["dataset"] = "mnist-v2"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="q4:dataset").value == "mnist-v2"
