"""A page's settings live in its URL, so a link carries them to a class and a reload restores the page:
    ?dataset=shapes&q2a.preset=quick&q2a.lr=0.003&q2a.seed=1&q2a.run=<run id>
(one prefix per question, as a page may hold two panels). Only settings that differ from the preset are written.
A bad value in a link gets the message its widget would give, and the default is used instead.
"""
from __future__ import annotations

import streamlit as st

from .words import text


def link_param(name: str) -> str | None:
    return st.query_params.get(name)


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
