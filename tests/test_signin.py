"""Sign-in end to end: the real app, its [auth] section pointing at a real OpenID Connect provider on 127.0.0.1
(oidc-provider-mock, started for the test), driven in headless Chromium.

Ann (e-mail verified, listed in ARLAB_INSTRUCTORS) signs in through the provider's login form, lands back signed in
as an instructor, and the run she starts belongs to her account; she signs out and the app asks her to sign in again.
Bob (listed too, but his provider does not vouch for his e-mail) signs in and is no instructor."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from bench.server import CHROMIUM, App, chromium, free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser
ANN = {"email": "ann@example.org", "email_verified": True, "name": "Ann Lee"}
BOB = {"email": "bob@example.org", "email_verified": False, "name": "Bob"}


def wait_for(url, proc, what, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{what} did not answer {url} within {timeout} s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def provider(tmp_path):
    """An OpenID Connect provider on 127.0.0.1 that knows Ann and Bob and their claims."""
    pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is installed by bash lab.sh test")
    port = free_port()
    log = open(tmp_path / "provider.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/.well-known/openid-configuration", proc, "the provider", timeout=60)
        for user in (ANN, BOB):   # the provider's documented way to give a subject its claims
            req = urllib.request.Request(f"{url}/users/{quote(user['email'])}", data=json.dumps(user).encode(),
                                         method="PUT", headers={"Content-Type": "application/json"})
            assert urllib.request.urlopen(req, timeout=10).status == 204
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def app_url(provider, runs_dir, tmp_path):
    """The app with sign-in configured: secrets in a file of the test's own (--secrets.files), none in the repo."""
    pytest.importorskip("authlib", reason="Authlib (requirements.txt) is what st.login signs in with")
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (bash lab.sh test installs it as root)")
    port, kept = free_port(), (ROOT / ".streamlit" / "secrets.toml").exists()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
                       f'cookie_secret = "{os.urandom(16).hex()}"\nclient_id = "lab"\nclient_secret = "lab-secret"\n'
                       f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    env = {"ARLAB_INSTRUCTORS": f"{ANN['email']}, {BOB['email']}", "ARLAB_INSTRUCTOR_KEY": None,
           "ARLAB_WARM_TOKENS": "0"}   # no background tokenizing beside the test
    try:
        app = App(runs_dir, tmp_path / "app.log", env=env, timeout=240, port=port, args=["--secrets.files", secrets])
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(str(e))
    try:
        yield app.url
    finally:
        app.stop()
        from core.lab import store

        runs = store(runs_dir)
        for rid in runs.ids():   # a worker runs in its own session: stop the one the test started
            if runs.alive(rid):
                runs.launcher.stop(runs.dir(rid), runs.handle(runs.status(rid)))
    assert (ROOT / ".streamlit" / "secrets.toml").exists() == kept        # the test leaves no secrets in the repo


def sign_in(page, app_url, email):
    page.goto(app_url, wait_until="networkidle")
    page.get_by_text("asks everyone to sign in").wait_for(timeout=60_000)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_placeholder("sub").fill(email, timeout=30_000)          # the provider's login form
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.get_by_text("You:").first.wait_for(timeout=60_000)               # back in the app, signed in


def test_sign_in_train_as_the_account_instructor_by_verified_email_and_sign_out(app_url, runs_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = chromium(p)
        ann = browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()
        sign_in(ann, app_url, ANN["email"])
        ann_is = ann.get_by_text(re.compile(r"^You: ")).first.inner_text()
        ann.get_by_role("link", name="Q1 · 1-D data").click(timeout=60_000)
        ann.get_by_role("button", name="Train Histogram").click(timeout=60_000)
        status = ann.get_by_text(re.compile(r"· run \d{8}-\d{6}-q1a-"))
        status.first.wait_for(timeout=60_000)
        run_id = re.search(r"\d{8}-\d{6}-q1a-\w{6}", status.first.inner_text()).group(0)
        ann.get_by_role("button", name="Sign out").click()
        ann.get_by_role("button", name="End session").click(timeout=30_000)   # the provider's sign-out
        ann.get_by_text("asks everyone to sign in").wait_for(timeout=60_000)
        ann.get_by_role("button", name="Sign in").wait_for(timeout=30_000)    # drawn just after the text
        signed_out = ann.get_by_role("button", name="Sign in").count()
        ann.goto(app_url + "/q1_1d", wait_until="networkidle")                # and stays signed out
        ann.get_by_text("asks everyone to sign in").wait_for(timeout=60_000)

        bob = browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()
        sign_in(bob, app_url, BOB["email"])
        bob_is = bob.get_by_text(re.compile(r"^You: ")).first.inner_text()
        browser.close()
    spec = json.loads((runs_dir / run_id / "spec.json").read_text())
    assert (spec["owner"], spec["owner_name"]) == (f"user:{ANN['email']}", "Ann Lee")
    assert ann_is == "You: Ann Lee · instructor" and signed_out == 1
    assert bob_is == "You: Bob"          # listed as an instructor, but his provider does not vouch for the e-mail
