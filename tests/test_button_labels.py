"""Nothing a learner reads on a button or a picker is cut: every page of the real app in headless Chromium at
1280x720 (a laptop window), with finished runs in its lists (their labels are the longest), the Report built.

For every button, widget label, radio option, tab and metric label, each piece of its text must lie inside every box
that clips it (overflow hidden, an ellipsis); a select box's shown choice must fit its box; a data frame must show
all its columns (a grid wider than its box hides the last ones off to the right)."""
from pathlib import Path

import pytest

from bench.server import CHROMIUM, App
from tests.conftest import run_in_process
from tests.test_browser import browser  # noqa: F401  (the one headless Chromium of the browser tests)

pytestmark = pytest.mark.browser

# What is cut on the page now: [{what, text, need, room}] (a text's laid-out width against its clipping box)
CUT = """() => {
  const bad = [];
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 &&
                          getComputedStyle(el).visibility !== 'hidden'; };
  const clips = el => { const cs = getComputedStyle(el); return cs.overflowX !== 'visible' || cs.textOverflow === 'ellipsis'; };
  const roots = '[data-testid="stMain"] button, [data-testid="stSidebar"] button, [data-testid="stWidgetLabel"], ' +
                '[data-testid="stRadio"] label, [role="tab"], [data-testid="stMetricLabel"]';
  for (const root of document.querySelectorAll(roots)) {
    if (!visible(root)) continue;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      const t = range.getBoundingClientRect();
      if (!t.width) continue;
      for (let el = n.parentElement; el; el = el.parentElement) {
        const b = el.getBoundingClientRect();
        const out = t.right > b.right + 1 || t.left < b.left - 1;
        if ((clips(el) || el === root) && (out || (clips(el) && el.scrollWidth > el.clientWidth + 1))) {
          bad.push({what: root.getAttribute('data-testid') || root.getAttribute('role') || root.tagName.toLowerCase(),
                    text: root.innerText.trim().slice(0, 100), need: Math.round(t.width), room: Math.round(b.width)});
          break;
        }
        if (el === root) break;
      }
    }
  }
  const ctx = document.createElement('canvas').getContext('2d');
  for (const input of document.querySelectorAll('[data-testid="stSelectbox"] input')) {
    if (!visible(input)) continue;
    const cs = getComputedStyle(input);
    ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const need = ctx.measureText(input.value).width;
    if (need > room + 1 || input.scrollWidth > input.clientWidth + 1)
      bad.push({what: 'selectbox ' + (input.getAttribute('aria-label') || ''), text: input.value,
                need: Math.round(need), room: Math.round(room)});
  }
  for (const grid of document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')) {
    if (visible(grid) && grid.scrollWidth > grid.clientWidth + 1)
      bad.push({what: 'dataframe', text: (grid.closest('[data-testid="stDataFrame"]').innerText || '').slice(0, 100),
                need: grid.scrollWidth, room: grid.clientWidth});
  }
  return bad;
}"""

IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"   # the page has finished its run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app (bench.server.App) over a runs folder holding finished runs of Q1 (both parts) and a tiny Q2a: the
    lists' longest labels are those of runs (their ids)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (bash lab.sh test installs it as root)")
    pytest.importorskip("playwright")
    from core.engine import RunSpec
    from core.questions import get

    runs = tmp_path_factory.mktemp("labels") / "runs"
    tiny_q2 = {**get("q2a").preset("quick"), "filters": 4, "layers": 0, "kernel_size": 3, "epochs": 1,
               "subset": 200.0, "test_sample": 100}
    for q, ds, hp in (("q1a", "1d-1", get("q1a").preset("quick")), ("q1b", "1d-1", get("q1b").preset("quick")),
                      ("q2a", "shapes", tiny_q2)):
        run_in_process(runs, RunSpec(q, ds, hp, preset="quick"))
    try:
        app = App(runs, timeout=240, env={"ARLAB_WARM_TOKENS": "0"})
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(str(e))
    with app:
        yield app.url


def _settle(page):
    page.locator("h1").first.wait_for(timeout=90_000)
    page.wait_for_function(IDLE, timeout=120_000)
    page.wait_for_timeout(800)   # fonts and late layout


def _build_report_with_nothing_drawn(page):
    """Leave every item of the Report out (nothing to sample: the build takes seconds) and build it."""
    from playwright.sync_api import TimeoutError as NoneOpened

    boxes = page.locator('[data-testid="stExpander"] [data-testid="stSelectbox"] input')
    options = page.locator('[role="listbox"] [role="option"]')
    for i in range(boxes.count()):
        for _ in range(5):   # a click while the page redraws the last choice may open nothing: click again
            boxes.nth(i).click()
            try:
                options.last.wait_for(timeout=3_000)
                break
            except NoneOpened:
                page.keyboard.press("Escape")
                _settle(page)
        options.last.click()   # every item's last choice: (leave out)
        _settle(page)
    page.get_by_role("button", name="Build the report").click()
    page.get_by_text("figures made").first.wait_for(timeout=120_000)
    _settle(page)


def test_no_button_or_picker_label_is_cut_on_any_page(server, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        page.goto(server, wait_until="networkidle")
        _settle(page)
        hrefs = page.locator('[data-testid="stSidebarNav"] a').evaluate_all("links => links.map(a => a.href)")
        assert len(set(hrefs)) >= 10, hrefs   # home, data sets, runs, report and the six questions
        cut = {}
        for href in sorted(set(hrefs)):
            page.goto(href, wait_until="networkidle")
            _settle(page)
            report = page.get_by_role("button", name="Build the report").count() > 0
            if report:   # its sources, each item's picker showing its first choice
                page.get_by_text("Sources, item by item").click()
                _settle(page)
            found = page.evaluate(CUT)
            if report:   # and once built: its downloads
                _build_report_with_nothing_drawn(page)
                found += page.evaluate(CUT)
            if found:
                cut[href.removeprefix(server)] = found
        assert not cut, "\n".join(f"{path}: {c['what']}: {c['text']!r} is {c['need']} px wide in {c['room']} px"
                                   for path, found in cut.items() for c in found)
    finally:
        context.close()
