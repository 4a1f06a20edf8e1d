"""Who is using the lab, and the server's shared machinery: one background pump, a limiter for in-server work.

Identity (`me()`):
  - where the instructor configured sign-in (an [auth] section in .streamlit/secrets.toml: Streamlit's st.login with
    OIDC), everyone signs in and a run's owner is the signed-in account; instructors are the e-mail addresses in
    ARLAB_INSTRUCTORS (comma-separated);
  - otherwise each browser gets a private token, kept in a cookie with the name the learner gives (once); the
    instructor role is for whoever types ARLAB_INSTRUCTOR_KEY (kept in the browser as a keyed hash, not the key).
    Without sign-in a name is not a proof: it keeps learners' runs apart, it does not stop someone who edits cookies.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, unquote

import streamlit as st

COOKIE, ROLE_COOKIE = "arlab_me", "arlab_role"
PUMP_EVERY_S, PRUNE_EVERY_S = 2.0, 600.0


@dataclass(frozen=True)
class Me:
    owner: str          # what runs record: "user:<email>" (signed in) or "b:<token>" (this browser)
    name: str           # what pages show
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


def _write_cookie(name: str, value: str) -> None:
    """Keep `value` in this browser for a year (the page's own origin; read back through st.context.cookies)."""
    st.html(f"<script>document.cookie = '{name}={quote(value)}; path=/; max-age=31536000; SameSite=Lax';</script>",
            unsafe_allow_javascript=True)


def clean_name(name: str) -> str:
    name = re.sub(r"\s+", " ", str(name)).strip()
    if not 1 <= len(name) <= 40 or not re.fullmatch(r"[\w .'@-]+", name):
        raise ValueError("a name is 1 to 40 letters, digits, spaces or . ' @ -")
    return name


def _cookies() -> dict[str, str]:
    try:
        return {k: v for k, v in dict(st.context.cookies).items() if isinstance(v, str)}
    except Exception:  # no browser behind this session (a script test)
        return {}


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
        email = st.user.get("email") or st.user.get("sub") or ""
        teachers = {e.strip().lower() for e in os.environ.get("ARLAB_INSTRUCTORS", "").split(",") if e.strip()}
        who = Me(f"user:{email}", st.user.get("name") or email, email.lower() in teachers, True)
    else:
        cookies = _cookies()
        token, _, name = unquote(cookies.get(COOKIE, "")).partition("|")
        if not re.fullmatch(r"[0-9a-f]{16}", token):
            token, name = secrets.token_hex(8), ""
            st.session_state["me:save"] = True
        role = cookies.get(ROLE_COOKIE, "")
        who = Me(f"b:{token}", name or f"guest {token[:4]}", bool(role) and hmac.compare_digest(role, _role_hash(token)))
    st.session_state["me"] = who
    return who


def set_name(name: str) -> Me:
    who = me()
    new = Me(who.owner, clean_name(name), who.instructor, who.signed_in)
    st.session_state["me"], st.session_state["me:save"] = new, True
    return new


def become_instructor(key: str) -> bool:
    want = os.environ.get("ARLAB_INSTRUCTOR_KEY", "")
    who = me()
    if not want or not hmac.compare_digest(key.encode(), want.encode()):
        return False
    st.session_state["me"] = Me(who.owner, who.name, True, who.signed_in)
    st.session_state["me:save-role"] = True
    return True


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


# --------------------------------------------------------------------------------------------- the server's machinery
@st.cache_resource
def start_pump(root: str) -> threading.Thread:
    """One thread per server starts waiting runs, notices dead workers, enforces budgets and force stops, and
    prunes old runs — so no page has to, and a queue never stalls when nobody is looking."""
    from core import lab

    def loop():
        store, last_prune = lab.store(root), 0.0
        while os.path.isdir(root):
            try:
                store.pump()
                if time.time() - last_prune > PRUNE_EVERY_S:
                    store.prune()
                    last_prune = time.time()
            except Exception:  # noqa: BLE001 - the pump must outlive any one bad run folder
                traceback.print_exc()
            time.sleep(PUMP_EVERY_S)

    t = threading.Thread(target=loop, name=f"arlab-pump:{root}", daemon=True)
    t.start()
    return t


def server_threads() -> int:
    """Torch threads for work done inside the server (sampling on pages): the cores the training slots leave."""
    from core.device import cpu_count

    env = os.environ.get("ARLAB_SERVER_THREADS")
    return max(1, int(env)) if env else max(1, cpu_count() - int(os.environ.get("ARLAB_SLOTS", "1") or 1))


@st.cache_resource
def _limiter() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(max(1, int(os.environ.get("ARLAB_SERVER_JOBS", "1") or 1)))


@contextmanager
def server_work(what: str = "drawing samples"):
    """Heavy work in the server (sampling, completing, writing poems) runs ARLAB_SERVER_JOBS at a time (default 1):
    thirty learners pressing Sample at once queue here instead of thrashing the cores the training runs need."""
    sem = _limiter()
    if not sem.acquire(blocking=False):
        with st.spinner(f"Waiting for the server: other learners are {what}…"):
            sem.acquire()
    try:
        yield
    finally:
        sem.release()
