"""The real app in headless Chromium: open Q1, press Train, see the live curve appear."""
import os
import re
import time
from pathlib import Path

import pytest

from bench.server import CHROMIUM, App, chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The README's command on a free port with a runs folder of its own (bench.server.App), one for the module's
    tests (each test opens fresh browser contexts, so none sees another's cookies); its URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (bash lab.sh test installs it as root)")
    pytest.importorskip("playwright")
    try:
        app = App(tmp_path_factory.mktemp("browser") / "runs", timeout=240,
                  env={"ARLAB_WARM_TOKENS": "0"})   # no background tokenizing beside the test
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(str(e))
    with app:
        yield app.url


@pytest.fixture(scope="module")
def browser(server):
    """One headless Chromium for the module; a test's pages each open in a new context (no shared state)."""
    from playwright.sync_api import sync_playwright

    p = sync_playwright().start()
    b = chromium(p)
    try:
        yield b
    finally:
        b.close()
        p.stop()


@pytest.fixture
def new_page(browser):
    """new_page(height) -> a page in a fresh browser context (no cookies shared), closed after the test."""
    contexts = []

    def make(height: int = 2000):
        contexts.append(browser.new_context(viewport={"width": 1400, "height": height}))
        return contexts[-1].new_page()

    yield make
    for c in contexts:
        c.close()


def test_a_link_straight_to_a_page_gets_the_app_navigation(server, new_page):
    """On a fresh server (the module's first test, so its server has served no page yet), /q2_pixelcnn must open inside app.py's navigation, not as a bare pages/ file."""
    page = new_page(1200)
    page.goto(server + "/q2_pixelcnn", wait_until="networkidle")
    page.get_by_role("heading", name="Q2 · PixelCNN").first.wait_for(timeout=60_000)
    page.get_by_text("Queue:").first.wait_for(timeout=30_000)       # app.py's sidebar
    nav = page.locator('[data-testid="stSidebarNav"]')
    links = nav.get_by_role("link").all_inner_texts()
    assert any("Q2 · PixelCNN" in t for t in links), links
    assert not any(t.strip() in ("ui", "app", "questions index") for t in links), links


def test_q1_train_shows_a_live_curve(server, new_page, tmp_path):
    page = new_page(2200)
    page.goto(server, wait_until="networkidle")
    page.get_by_role("link", name="Q1 · 1-D data").click(timeout=60_000)
    page.get_by_role("button", name="Train Histogram").click(timeout=60_000)
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=90_000)
    page.get_by_text("test loss:").first.wait_for(timeout=90_000)
    shot = os.environ.get("ARLAB_SCREENSHOT") or str(tmp_path / "q1.png")
    page.screenshot(path=shot, full_page=True)
    assert Path(shot).stat().st_size > 10_000


def test_q6_deep_link_writes_captions_for_images(server, new_page, tmp_path):
    """A link straight to the Q6 page opens it; "Write captions" puts a caption under each of nine test images."""
    from core import checkpoints

    if not checkpoints.find(name="q6-mnist-v2"):
        pytest.skip("no Q6 checkpoint shipped")
    page = new_page(3000)
    page.goto(server + "/q6_multimodal", wait_until="networkidle")
    page.get_by_role("heading", name="Q6 · Text + image").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Write captions").click(timeout=90_000)
    written = page.get_by_text(re.compile(r"^\d/5 .*\(truth: "))     # nine captions, each scored
    written.nth(8).wait_for(timeout=90_000)
    n = written.count()
    shot = os.environ.get("ARLAB_SCREENSHOT") or str(tmp_path / "q6.png")
    page.screenshot(path=shot, full_page=True)
    assert n == 9


def test_a_shared_link_opens_with_the_same_settings_in_a_fresh_browser(server, new_page):
    """Change a setting on the Q2 page; its URL now carries it; a fresh browser context opening that URL shows it."""
    first = new_page(2000)
    first.goto(server + "/q2_pixelcnn", wait_until="networkidle")
    epochs = first.get_by_role("spinbutton", name="epochs", exact=True)
    epochs.wait_for(timeout=60_000)
    epochs.fill("7")
    epochs.press("Enter")
    deadline = time.time() + 30
    while "q2a.epochs=7" not in first.url and time.time() < deadline:
        first.wait_for_timeout(250)
    link = first.url
    fresh = new_page(2000)   # no shared state
    fresh.goto(link, wait_until="networkidle")
    fresh.get_by_text("restored from the link").first.wait_for(timeout=60_000)
    value = fresh.get_by_role("spinbutton", name="epochs", exact=True).input_value()
    assert "q2a.epochs=7" in link and value == "7"


def test_runs_are_their_owners_after_a_reload_and_not_others(server, new_page):
    """Ann gives her name and trains; after a reload she sees her run (the name is kept in her browser); Bob, in
    another browser, does not see it on the Q1 page, cannot open it by its bare link ("not yours to open"), and
    through the link Ann shares (Share this run) sees it but can neither cancel nor delete it."""
    ann = new_page(2000)
    ann.goto(server + "/q1_1d", wait_until="networkidle")
    ann.get_by_role("button", name="Your name").click(timeout=60_000)
    ann.get_by_role("textbox", name="Name shown on your runs").fill("Ann")
    ann.get_by_role("button", name="Save").click()
    ann.get_by_text("You: Ann").wait_for(timeout=30_000)
    ann.get_by_role("button", name="Train Histogram").click(timeout=60_000)
    status = ann.get_by_text(re.compile(r"· run \d{8}-\d{6}-q1a-"))
    status.first.wait_for(timeout=60_000)
    run_id = re.search(r"\d{8}-\d{6}-q1a-\w{6}", status.first.inner_text()).group(0)
    ann.reload(wait_until="networkidle")
    ann.get_by_text("You: Ann").wait_for(timeout=60_000)
    ann.get_by_text(run_id).first.wait_for(timeout=60_000)

    bob = new_page(2000)
    bob.goto(server + "/q1_1d", wait_until="networkidle")
    bob.get_by_text("No run yet").first.wait_for(timeout=60_000)
    bob_sees = bob.get_by_text(run_id).count()
    bob.goto(server + f"/runs?run={run_id}", wait_until="networkidle")
    bob.get_by_text("not yours to open").first.wait_for(timeout=60_000)
    bob_opens_bare = bob.get_by_text("Ann's run").count()
    ann.goto(server + f"/runs?run={run_id}", wait_until="networkidle")
    ann.get_by_role("button", name="Share this run").click(timeout=60_000)
    link = ann.get_by_text(re.compile(r"runs\?run=.*&share=")).first
    link.wait_for(timeout=60_000)
    shared = link.inner_text().strip()   # the full address (st.context.url)
    bob.goto(shared, wait_until="networkidle")
    bob.get_by_text("Ann's run").first.wait_for(timeout=60_000)
    delete_enabled = bob.get_by_role("button", name="Delete run").is_enabled()
    cancels = bob.get_by_role("button", name="Cancel").count()
    assert bob_sees == 0 and bob_opens_bare == 0 and not delete_enabled and cancels == 0
    assert shared.startswith(f"{server}/runs?run={run_id}&share="), shared
