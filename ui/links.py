"""A page's settings live in its URL, so a link carries them to a class and a reload restores the page:
    ?dataset=shapes&q2a.preset=quick&q2a.lr=0.003&q2a.seed=1&q2a.run=<run id>
(one prefix per question, as a page may hold two panels). Only settings that differ from the preset are written.
A bad value in a link gets the message its widget would give, and the default is used instead.
"""
from __future__ import annotations

import re

import streamlit as st

from .words import text


def link_param(name: str) -> str | None:
    return st.query_params.get(name)


def share_for(run_id: str | None, named=()) -> str:
    """The share token this session holds for `run_id`. A link's `share` is read once, kept in the session for the
    runs the link names (`named`, default the run itself) and taken out of the address, so a link the learner copies
    later ("my settings", their own run) never hands the token on."""
    shares = st.session_state.setdefault("_shares", {})
    token = st.query_params.get("share")
    if token:
        for rid in (named or (run_id,)):
            if rid:
                shares[rid] = token
        del st.query_params["share"]
    return shares.get(run_id, "") if run_id else ""


def shared_runs() -> list[str]:
    """The runs this session opened through a share link."""
    return list(st.session_state.get("_shares", {}))


def _set_link(name: str, value) -> None:
    if value is None:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != str(value):
        st.query_params[name] = str(value)


def _link_warn(what: str, msg: str):
    """A bad value in the page's link: said in plain words, without echoing what the link holds."""
    st.warning(text(f"The link's {what}: {msg}; the default is used instead."), icon="🔗")


def _from_link(f, raw: str):
    """A field's value from its link text (raises ValueError with the widget's message)."""
    if f.kind == "bool":
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("must be true or false")
    return f.parse(raw)


def _opened_with(prefix: str) -> list[str]:
    """The link settings (names after `prefix`) this page was opened with: read at the first render of the prefix in
    this session only, so the settings a page writes into its own URL are never taken for a link."""
    seen = st.session_state.setdefault("_link_read", [])
    if prefix in seen:
        return []
    seen.append(prefix)
    return [n for n in st.query_params if n.startswith(prefix)]


_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def page_address(page: str, query: str) -> str | None:
    """The full address of this app's `page` (its URL path, e.g. "runs") with `query`, as the browser reached the
    app: the address it reports for the page it is on (st.context.url, when that is `page`), else the request's Host
    (and X-Forwarded-Proto, behind a TLS proxy) with the served base path. None when neither is known (then a page
    says plainly what to put before the link)."""
    from urllib.parse import urlsplit

    from .identity import _headers, _page_url

    here = urlsplit(_page_url())
    if here.scheme in ("http", "https") and _HOST.fullmatch(here.netloc or "") \
            and here.path.rstrip("/").endswith("/" + page):
        return f"{here.scheme}://{here.netloc}{here.path.rstrip('/')}?{query}"
    headers = _headers()
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    if not _HOST.fullmatch(host):
        return None
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    base = "/".join(p for p in str(st.get_option("server.baseUrlPath") or "").split("/") if p)
    return f"{'https' if proto == 'https' else 'http'}://{host}/{base + '/' if base else ''}{page}?{query}"
