"""The sidebar every page shares: who you are (and a name to give), your runs and the class's, the device."""
from __future__ import annotations

import os

import streamlit as st

from .identity import me, save_identity, set_name, sign_out
from .instructor import become_instructor
from .store import device, store
from .words import plural


def _try_instructor_key():
    """Each key typed is tried once (not again on every rerun while it sits in the box), then the box is emptied."""
    key = st.session_state.get("me:key") or ""
    if key:
        st.session_state["me:key"], st.session_state["me:key-said"] = "", become_instructor(key).message


def _who():
    """Who you are: your name (a field to give or change it), the instructor key, sign-out."""
    who = me()
    save_identity()
    st.markdown(f"**You:** {who.name}{' · instructor' if who.instructor else ''}")
    if who.signed_in:
        st.button("Sign out", on_click=sign_out, key="me:sign-out")
        return
    said = ""
    with st.popover("Your name" if who.name.startswith("guest ") else "Change your name", width="stretch"):
        with st.form("me:form", border=False):
            name = st.text_input("Name shown on your runs", value="" if who.name.startswith("guest ") else who.name,
                                 max_chars=40, help="Kept in this browser; your runs stay yours after a reload.")
            if st.form_submit_button("Save"):
                try:
                    set_name(name)
                    st.rerun()
                except ValueError as e:
                    said = f"{str(e)[:1].upper()}{str(e)[1:]}."
        if os.environ.get("ARLAB_INSTRUCTOR_KEY") and not who.instructor:
            st.text_input("Instructor key", type="password", key="me:key", on_change=_try_instructor_key)
    said = said or st.session_state.pop("me:key-said", "")
    if said:   # below the popover, which closes when the page reruns
        st.error(said)


def _counts(health):
    """Your runs and the queue's, and the device (or whether the cluster answers: health = (ok, message))."""
    from core.device import describe

    mine, all_ = store().queue_summary(owner=me().owner), store().queue_summary()
    st.markdown(f"**Your runs:** {mine['running']} running · {mine['queued']} waiting · {mine['done']} done")
    st.markdown(f"**Queue:** {all_['running']} running · {all_['queued']} waiting · {all_['done']} done · "
                f"{all_['failed']} failed · {all_['cancelled']} cancelled")
    if health:   # a cluster launcher: say plainly whether it answers
        ok, msg = health
        (st.caption if ok else st.warning)(("☁️ " if ok else "") + msg[:1].upper() + msg[1:] + ".")
        if store().unavailable and ok:
            st.caption(f"Last try: {store().unavailable}")
    else:
        st.caption(f"**Device:** {describe(device())} · {plural(store().max_concurrent, 'run')} at a time; runs "
                   "survive reloads.")


def sidebar():
    """The sidebar every page shares, drawn before the page runs, so a page that stops early (st.stop: no runs
    yet, a link that is not yours, a report not built) still has it. Returns a function that redraws the counts in
    their place: call it after the page, so they include a run the page just queued (or a start it was refused)."""
    _who()
    ask = getattr(store().launcher, "health", None)
    health = ask() if ask else None   # asked once per page run (a cluster's dashboard is a network call)
    slot = st.empty()

    def counts():
        with slot.container():
            _counts(health)

    counts()
    return counts
