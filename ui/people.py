"""Who is using the lab, and the server's shared machinery: one background pump, a limiter for in-server work.

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
import math
import os
import re
import secrets
import threading
import time
import traceback
import unicodedata
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, unquote

import streamlit as st

COOKIE, ROLE_COOKIE = "arlab_me", "arlab_role"
PUMP_EVERY_S, PRUNE_EVERY_S = 2.0, 600.0
# Words a learner's name may not hold (case-insensitive, as a word): a name must not pass for a role.
ROLE_WORDS = frozenset("prof professor dr doctor instructor teacher tutor lecturer ta admin administrator staff "
                       "moderator".split())
# Instructor-key tries: per browser (owner token) and for the whole server (so fresh cookies do not get around it).
KEY_TRIES_PER_OWNER, KEY_TRIES_PER_SERVER, KEY_WINDOW_S = 5, 30, 60.0


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
    """A name as pages show it: 1 to 40 letters, digits, spaces or . ' @ -, and no role word ("Prof", "TA", ...)."""
    name = unicodedata.normalize("NFC", re.sub(r"\s+", " ", str(name)).strip())
    if not 1 <= len(name) <= 40 or not re.fullmatch(r"[\w .'@-]+", name):
        raise ValueError("a name is 1 to 40 letters, digits, spaces or . ' @ -")
    words = re.findall(r"[^\W\d_]+", unicodedata.normalize("NFKC", name).casefold())
    role = next((w for w in words if w in ROLE_WORDS), None)
    if role:
        raise ValueError(f"a name may not claim a role (\"{role}\"): the lab marks instructors itself")
    return name


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


# ------------------------------------------------------------------------------------------------ the instructor key
@dataclass(frozen=True)
class KeyTry:
    """What came of a try at the instructor key: true when it made this learner an instructor; `message` says why
    not."""
    ok: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.ok


class Throttle:
    """At most `per_owner` tries per owner and `per_server` in all within any `window_s` seconds."""

    def __init__(self, per_owner: int = KEY_TRIES_PER_OWNER, per_server: int = KEY_TRIES_PER_SERVER,
                 window_s: float = KEY_WINDOW_S):
        self.per_owner, self.per_server, self.window_s = per_owner, per_server, window_s
        self._lock = threading.Lock()
        self._all: deque[float] = deque()
        self._by_owner: dict[str, deque[float]] = {}

    def wait(self, owner: str, now: float | None = None) -> float:
        """0.0, counting this try; or the seconds until one more is allowed (counting nothing)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for q in (self._all, *self._by_owner.values()):
                while q and q[0] <= now - self.window_s:
                    q.popleft()
            self._by_owner = {o: q for o, q in self._by_owner.items() if q}   # bounded by per_server
            mine = self._by_owner.get(owner, deque())
            full = [q for q, cap in ((mine, self.per_owner), (self._all, self.per_server)) if len(q) >= cap]
            if full:
                return max(q[0] + self.window_s - now for q in full)
            mine.append(now)
            self._all.append(now)
            self._by_owner[owner] = mine
            return 0.0


KEY_TRIES = Throttle()   # one per server process


def become_instructor(key: str) -> KeyTry:
    """Try `key` as ARLAB_INSTRUCTOR_KEY. Throttled (per browser and per server) before the key is looked at, so
    it cannot be found by guessing."""
    want = os.environ.get("ARLAB_INSTRUCTOR_KEY", "")
    who = me()
    if not want:
        return KeyTry(False, "This server has no instructor key.")
    wait = KEY_TRIES.wait(who.owner)
    if wait:
        return KeyTry(False, f"Too many tries: wait {math.ceil(wait)} s.")
    if not _same(key, want):
        return KeyTry(False, "That is not the instructor key.")
    st.session_state["me"] = Me(who.owner, who.name, True, who.signed_in)
    st.session_state["me:save-role"] = True
    return KeyTry(True)


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
