"""Who is using the lab: a run's owner, the name pages show, the cookies that keep them.

Identity (`me()`):
  - where the instructor configured sign-in (an [auth] section in .streamlit/secrets.toml: Streamlit's st.login with
    OIDC), everyone signs in and a run's owner is the signed-in account: its e-mail where the provider vouches for
    it (email_verified), else the provider's subject; instructors are the verified e-mail addresses in
    ARLAB_INSTRUCTORS (comma-separated);
  - otherwise each browser gets a private token, kept in a cookie with the name the learner gives (once); the
    instructor role is for whoever types ARLAB_INSTRUCTOR_KEY (kept in the browser as a keyed hash, not the key;
    tries are throttled per browser and per server). Without sign-in a name is not a proof: it keeps learners' runs
    apart, it does not stop someone who edits cookies.
A name is plain text, cleaned wherever it is read (cookie, sign-in claims; `display_name` for a name other code
shows), and may not claim a role. Cookies are SameSite=Lax, and Secure when the page is served over HTTPS.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, unquote

import streamlit as st

from core.names import check_name

COOKIE, ROLE_COOKIE = "arlab_me", "arlab_role"
@dataclass(frozen=True)
class Me:
    owner: str          # what runs record: "user:<email>" (signed in, e-mail verified), "sub:<subject>" (signed
                        # in, e-mail not verified) or "b:<token>" (this browser)
    name: str           # what pages show (always a cleaned name)
    instructor: bool = False
    signed_in: bool = False


def auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def _role_hash(token: str) -> str:
    key = os.environ.get("ARLAB_INSTRUCTOR_KEY", "")
    return hmac.new(key.encode(), token.encode(), hashlib.sha256).hexdigest()[:32] if key else ""


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings, as bytes (compare_digest raises on a str with non-ASCII in it)."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


# ------------------------------------------------------------------------------------------------------------ names
def clean_name(name: str) -> str:
    """A name as pages show it: 1 to 40 letters (of one alphabet), digits, spaces or . ' @ -, no role word ("Prof",
    "TA", ... also in look-alike letters) and none of the lab's own words ("you", "someone"): core.names."""
    return check_name(name)


def display_name(raw) -> str:
    """A name to show other learners (e.g. a run's owner_name): the cleaned name, or "someone" for anything that
    fails cleaning."""
    return _clean_or(raw, fallback="someone")


def _clean_or(*candidates, fallback: str) -> str:
    """The first candidate that cleans, else `fallback`."""
    for c in candidates:
        if isinstance(c, str) and c:
            try:
                return clean_name(c)
            except ValueError:
                pass
    return fallback


# --------------------------------------------------------------------------------------------------------- identity
def _cookies() -> dict[str, str]:
    try:
        return {k: v for k, v in dict(st.context.cookies).items() if isinstance(v, str)}
    except Exception:  # no browser behind this session (a script test)
        return {}


def _headers() -> dict[str, str]:
    try:
        return {k.lower(): v for k, v in st.context.headers.to_dict().items() if isinstance(v, str)}
    except Exception:
        return {}


def _page_url() -> str:
    try:
        return st.context.url or ""
    except Exception:
        return ""


def served_over_https(headers: dict[str, str] | None = None, url: str | None = None) -> bool:
    """Did the browser reach the page over HTTPS (itself, or through a TLS proxy that says so)?"""
    headers = {k.lower(): v for k, v in (_headers() if headers is None else headers).items()}
    url = _page_url() if url is None else url
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return (proto == "https" or url.lower().startswith("https://")
            or any(headers.get(h, "").lower().startswith("https://") for h in ("origin", "referer")))


def cookie_script(name: str, value: str, secure: bool) -> str:
    """The script that keeps `value` in this browser for a year: SameSite=Lax, and Secure when the page was served
    over HTTPS (`secure`; the script adds it too when the browser finds it is on HTTPS and no header said so)."""
    attrs = "; path=/; max-age=31536000; SameSite=Lax" + ("; Secure" if secure else "")
    also = "" if secure else " + (location.protocol === 'https:' ? '; Secure' : '')"
    return f"<script>document.cookie = '{name}={quote(value, safe='')}{attrs}'{also};</script>"


def _write_cookie(name: str, value: str) -> None:
    """Keep `value` in this browser (the page's own origin; read back through st.context.cookies)."""
    st.html(cookie_script(name, value, served_over_https()), unsafe_allow_javascript=True)


def signed_in_me(claims, instructors: str | None = None) -> Me:
    """The learner behind sign-in claims (st.user). The account is the e-mail where the provider vouches for it
    (email_verified), else the provider's subject; an instructor is a verified e-mail in ARLAB_INSTRUCTORS."""
    email, sub = str(claims.get("email") or ""), str(claims.get("sub") or "")
    verified = bool(email) and claims.get("email_verified") in (True, "true", "True")
    owner = f"user:{email}" if verified else f"sub:{sub or email}"
    listed = os.environ.get("ARLAB_INSTRUCTORS", "") if instructors is None else instructors
    teachers = {e.strip().lower() for e in listed.split(",") if e.strip()}
    guest = f"guest {hashlib.sha256(owner.encode()).hexdigest()[:4]}"
    return Me(owner, _clean_or(claims.get("name"), email.partition("@")[0], fallback=guest),
              verified and email.lower() in teachers, True)


def browser_me(cookies: dict[str, str]) -> tuple[Me, bool]:
    """The learner behind this browser's cookies -> (who, whether the token is new and must be saved)."""
    token, _, name = unquote(cookies.get(COOKIE, "")).partition("|")
    fresh = not re.fullmatch(r"[0-9a-f]{16}", token)
    if fresh:
        token, name = secrets.token_hex(8), ""
    role, want = cookies.get(ROLE_COOKIE, ""), _role_hash(token)
    who = Me(f"b:{token}", _clean_or(name, fallback=f"guest {token[:4]}"), bool(role and want) and _same(role, want))
    return who, fresh


def me() -> Me:
    """The current learner (see the module's docstring); made once per session."""
    if "me" in st.session_state:
        return st.session_state["me"]
    if auth_configured():
        if not st.user.is_logged_in:
            st.title("🧪 Autoregressive Lab")
            st.info("This lab's server asks everyone to sign in, so your runs are yours.")
            st.button("Sign in", on_click=st.login, type="primary")
            st.stop()
        who = signed_in_me(st.user)
    else:
        who, fresh = browser_me(_cookies())
        if fresh:
            st.session_state["me:save"] = True
    st.session_state["me"] = who
    return who


def sign_out() -> None:
    """Forget who this session was and sign out (st.logout: the provider's own sign-out where it has one, then the
    app asks to sign in again)."""
    st.session_state.pop("me", None)
    st.logout()


def set_name(name: str) -> Me:
    who = me()
    new = Me(who.owner, clean_name(name), who.instructor, who.signed_in)
    st.session_state["me"], st.session_state["me:save"] = new, True
    return new


def save_identity() -> None:
    """Write what changed about this learner to the browser (called from the sidebar on every page)."""
    who = me()
    if who.signed_in:
        return
    if st.session_state.pop("me:save", False):
        name = "" if who.name.startswith("guest ") else who.name
        _write_cookie(COOKIE, f"{who.owner[2:]}|{name}")
    if st.session_state.pop("me:save-role", False):
        _write_cookie(ROLE_COOKIE, _role_hash(who.owner[2:]))
