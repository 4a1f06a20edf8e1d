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


def sidebar():
    """The sidebar every page shares: who you are (and a name to give), your runs and the class's, the device."""
    from core.device import describe

    who = me()
    save_identity()
    st.markdown(f"**You:** {who.name}{' · instructor' if who.instructor else ''}")
    if who.signed_in:
        st.button("Sign out", on_click=sign_out, key="me:sign-out")
    else:
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
    mine, all_ = store().queue_summary(owner=who.owner), store().queue_summary()
    st.markdown(f"**Your runs:** {mine['running']} running · {mine['queued']} waiting · {mine['done']} done")
    st.markdown(f"**Queue:** {all_['running']} running · {all_['queued']} waiting · {all_['done']} done · "
                f"{all_['failed']} failed · {all_['cancelled']} cancelled")
    health = getattr(store().launcher, "health", None)
    if health:   # a cluster launcher: say plainly whether it answers
        ok, msg = health()
        (st.caption if ok else st.warning)(("☁️ " if ok else "") + msg[:1].upper() + msg[1:] + ".")
        if store().unavailable and ok:
            st.caption(f"Last try: {store().unavailable}")
    else:
        st.caption(f"**Device:** {describe(device())} · {plural(store().max_concurrent, 'run')} at a time; runs "
                   "survive reloads.")
