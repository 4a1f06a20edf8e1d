"""Who is who on a class server: names are plain text, a name cannot pass for a role, the instructor key cannot be
guessed, a forged cookie cannot break a page, sign-in trusts only a verified e-mail, cookies are Secure over HTTPS.

Plain calls for the rules (ui.identity, ui.instructor), AppTest for the pages that use them. AppTest cannot seed
cookies or headers, so those tests hand me() its cookies by replacing ui.identity._cookies."""
import hashlib
import hmac
from pathlib import Path

import pytest

from ui import identity, instructor
from ui.identity import Me, browser_me, clean_name, display_name, signed_in_me
from ui.instructor import Throttle

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "0123456789abcdef"
ROLE_NAMES = ["Prof. Smith", "prof smith", "Dr X", "dr. who", "Instructor", "the teacher", "ADMIN", "TA Jim",
              "Ta-Jim", "Prof_Smith", "x@admin", "Ｉｎｓｔｒｕｃｔｏｒ", "Tutor Ann", "Professor Z"]


def app(monkeypatch, cookies=None, page=None, secrets=None, user=None, context=None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(identity, "_cookies", lambda: dict(cookies or {}))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if secrets:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.context.update(context or {})
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def you(at) -> str:
    return next(m.value for m in at.sidebar.markdown if m.value.startswith("**You:**"))


def html_bodies(at) -> list[str]:
    return [getattr(h, "proto", h).body for h in at.get("html")]


AUTH = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32,
                 "client_id": "lab", "client_secret": "secret",
                 "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}}


# ------------------------------------------------------------------------------------------------------------ names
def test_valid_names_clean_as_before_and_role_names_are_refused():
    assert clean_name("  Ann   Lee ") == "Ann Lee"
    assert clean_name("Zoë O'Neil-Brown") == "Zoë O'Neil-Brown"
    assert clean_name("Zoe\u0308") == "Zoë"                                  # decomposed input is composed
    for fine in ("Tamara", "Drew", "Staffan", "Admiral Ackbar", "Adrian", "Profit", "ann@example.org"):
        assert clean_name(fine) == fine
    for bad in ("", "x" * 41, "<b>Ann</b>", "Ann\u202eeL", "a|b", "[Ann](http://x)", "Ann\nLee\u200b"):
        with pytest.raises(ValueError, match="1 to 40"):
            clean_name(bad)
    for role in ROLE_NAMES:
        with pytest.raises(ValueError, match="may not claim a role"):
            clean_name(role)


def test_display_name_never_raises_and_shows_someone_for_what_fails():
    assert display_name("Ann Lee") == "Ann Lee"
    for raw in ("<img src=x onerror=alert(1)>", "Prof. Smith", "", None, 42, "x" * 500, "**bold**"):
        assert display_name(raw) == "someone"


def test_a_name_from_the_cookie_is_cleaned_when_read(monkeypatch):
    for bad in ("<script>alert(1)</script>", "Prof. Smith", "Admin", "x" * 80):
        who, fresh = browser_me({identity.COOKIE: f"{TOKEN}|{bad}"})
        assert (who.owner, who.name, fresh) == (f"b:{TOKEN}", f"guest {TOKEN[:4]}", False)
    assert browser_me({identity.COOKIE: f"{TOKEN}|Ann%20Lee"})[0].name == "Ann Lee"
    at = app(monkeypatch, {identity.COOKIE: f"{TOKEN}|Dr%20Evil%20%3Cb%3E"})      # the page, from the cookie
    assert you(at) == f"**You:** guest {TOKEN[:4]}"
    assert app(monkeypatch, {identity.COOKIE: f"{TOKEN}|Ann"}).session_state["me"].name == "Ann"


def test_a_name_from_sign_in_is_cleaned(monkeypatch):
    claims = {"sub": "42", "email": "ann@example.org", "email_verified": True}
    assert signed_in_me({**claims, "name": "Ann Lee"}).name == "Ann Lee"
    assert signed_in_me({**claims, "name": "<b>Prof. Ann</b>"}).name == "ann"           # the e-mail's local part
    odd = signed_in_me({**claims, "email": "a+b@example.org", "name": "Teacher"})
    assert odd.name.startswith("guest ") and "@" not in odd.name
    at = app(monkeypatch, secrets=AUTH, user={"is_logged_in": True, **claims, "name": "Admin <script>"})
    assert you(at) == "**You:** ann"


# ------------------------------------------------------------------------------------------- the instructor key
def test_the_throttle_counts_per_owner_and_per_server():
    t = Throttle(per_owner=5, per_server=30, window_s=60)
    assert [t.wait("ann", now=i) for i in range(5)] == [0.0] * 5
    assert t.wait("ann", now=10) == pytest.approx(50)          # the 6th within a minute waits for the 1st to age
    assert t.wait("ann", now=10.5) == pytest.approx(49.5)      # a refused try counts nothing
    assert t.wait("bob", now=10) == 0.0                        # others are not held up by Ann
    assert t.wait("ann", now=60.001) == 0.0                    # a minute after her first, one more
    fresh = Throttle(per_owner=5, per_server=30, window_s=60)   # a new cookie per try does not get around it
    assert [fresh.wait(f"b:{i}", now=i) for i in range(30)] == [0.0] * 30
    assert fresh.wait("b:new", now=31) == pytest.approx(29)
    assert len(fresh._by_owner) <= 30


def _try_keys():
    """A script run: this session's learner tries each key in session_state["keys"] in turn."""
    import streamlit as st

    from ui.identity import me
    from ui.instructor import become_instructor

    st.session_state["said"] = [(bool(t), t.message) for t in map(become_instructor, st.session_state["keys"])]
    st.session_state["after"] = me()


def try_keys(keys, token=TOKEN):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_try_keys, default_timeout=30)
    at.session_state["me"], at.session_state["keys"] = Me(f"b:{token}", "Ann"), list(keys)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at.session_state["said"], at.session_state["after"]


def test_instructor_key_tries_are_throttled_before_the_key_is_checked(monkeypatch):
    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "the-right-key")
    monkeypatch.setattr(instructor, "KEY_TRIES", Throttle())
    said, who = try_keys(["wrong"] * 5 + ["the-right-key"])
    assert said[:5] == [(False, "That is not the instructor key.")] * 5
    assert not said[5][0] and said[5][1].startswith("Too many tries: wait ") and said[5][1].endswith(" s.")
    assert not who.instructor                                   # the right key, throttled, was not even checked
    said, who = try_keys(["the-right-key"])                     # a new session of the same browser: still waits
    assert said[0][1].startswith("Too many tries") and not who.instructor
    said, who = try_keys(["the-right-key"], token="fedcba9876543210")   # another browser is not held up by Ann
    assert said == [(True, "")] and who.instructor
    # fresh cookies for every try do not get around the server's cap
    monkeypatch.setattr(instructor, "KEY_TRIES", Throttle(per_owner=5, per_server=3))
    said = [try_keys(["wrong"], token=f"{i:016x}")[0][0][1] for i in range(4)]
    assert said[:3] == ["That is not the instructor key."] * 3 and said[3].startswith("Too many tries")


def test_the_sidebar_tries_a_typed_key_once(monkeypatch):
    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "the-right-key")
    monkeypatch.setattr(instructor, "KEY_TRIES", Throttle())
    at = app(monkeypatch, {identity.COOKIE: f"{TOKEN}|Ann"})
    at.text_input(key="me:key").set_value("wrong").run()
    assert not at.session_state["me"].instructor and len(instructor.KEY_TRIES._all) == 1
    at = app(monkeypatch, {identity.COOKIE: f"{TOKEN}|Ann"})
    at.text_input(key="me:key").set_value("the-right-key").run()
    assert at.session_state["me"].instructor and len(instructor.KEY_TRIES._all) == 2


# ---------------------------------------------------------------------------------------------- a forged role cookie
def test_a_non_ascii_role_cookie_does_not_raise(monkeypatch):
    monkeypatch.setenv("ARLAB_INSTRUCTOR_KEY", "k")
    cookies = {identity.COOKIE: f"{TOKEN}|Ann", identity.ROLE_COOKIE: "é" * 32}
    who, _ = browser_me(cookies)
    assert who.owner == f"b:{TOKEN}" and not who.instructor
    assert not app(monkeypatch, cookies).session_state["me"].instructor
    good = hmac.new(b"k", TOKEN.encode(), hashlib.sha256).hexdigest()[:32]     # the real one still works
    assert browser_me({**cookies, identity.ROLE_COOKIE: good})[0].instructor


# ------------------------------------------------------------------------------------------ sign-in: verified e-mail
@pytest.mark.parametrize("verified, instructor", [(True, True), ("true", True), (False, False), ("false", False),
                                                  (None, False)])
def test_sign_in_makes_an_instructor_only_of_a_verified_email(verified, instructor):
    claims = {"sub": "42", "email": "Ann@Example.org", "name": "Ann"}
    if verified is not None:
        claims["email_verified"] = verified
    who = signed_in_me(claims, instructors="ann@example.org, bob@example.org")
    assert who.instructor is instructor and who.signed_in
    # an unverified e-mail does not name the account either: nobody gets someone else's runs by claiming an address
    assert who.owner == ("user:Ann@Example.org" if instructor else "sub:42")


def test_sign_in_on_the_page(monkeypatch):
    monkeypatch.setenv("ARLAB_INSTRUCTORS", "ann@example.org")
    base = {"is_logged_in": True, "sub": "42", "email": "ann@example.org", "name": "Ann"}
    at = app(monkeypatch, secrets=AUTH, user={**base, "email_verified": True})
    assert you(at) == "**You:** Ann · instructor" and at.session_state["me"] == Me("user:ann@example.org", "Ann",
                                                                                    True, True)
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    at = app(monkeypatch, secrets=AUTH, user={**base, "email_verified": False})
    assert you(at) == "**You:** Ann" and at.session_state["me"].owner == "sub:42"
    at = app(monkeypatch, secrets=AUTH, user={"is_logged_in": False})
    assert [b.label for b in at.button] == ["Sign in"]


# ----------------------------------------------------------------------------------------------- Secure over HTTPS
def test_served_over_https():
    assert identity.served_over_https({"X-Forwarded-Proto": "https"}, "")
    assert identity.served_over_https({"x-forwarded-proto": "https, http"}, "")
    assert identity.served_over_https({"Origin": "https://lab.example.org"}, "")
    assert identity.served_over_https({"Referer": "https://lab.example.org/q1_1d"}, "")
    assert identity.served_over_https({}, "https://lab.example.org/")
    assert not identity.served_over_https({"X-Forwarded-Proto": "http", "Origin": "http://127.0.0.1:8501",
                                         "Host": "127.0.0.1:8501"}, "http://127.0.0.1:8501/")


def test_cookies_are_secure_when_served_over_https(monkeypatch):
    secure = identity.cookie_script(identity.COOKIE, f"{TOKEN}|Ann", True)
    assert "SameSite=Lax; Secure'" in secure and "location.protocol" not in secure
    plain = identity.cookie_script(identity.COOKIE, f"{TOKEN}|Ann", False)
    assert "SameSite=Lax' + (location.protocol === 'https:'" in plain and "Lax; Secure" not in plain
    assert "'" not in identity.cookie_script("x", "a'b", False).split("= '", 1)[1].split("'", 1)[0]   # quoted value
    # a fresh browser on the page: its token cookie is written Secure behind HTTPS, and not on plain HTTP
    written = html_bodies(app(monkeypatch, context={"url": "https://lab.example.org/"}))
    assert any(f"{identity.COOKIE}=" in b and "SameSite=Lax; Secure'" in b for b in written), written
    written = html_bodies(app(monkeypatch, context={"url": "http://127.0.0.1:8501/"}))
    assert any(f"{identity.COOKIE}=" in b and "Lax; Secure" not in b for b in written), written
    monkeypatch.setattr(identity, "_headers", lambda: {"x-forwarded-proto": "https"})
    written = html_bodies(app(monkeypatch, context={"url": "http://lab.internal/"}))
    assert any(f"{identity.COOKIE}=" in b and "SameSite=Lax; Secure'" in b for b in written), written
