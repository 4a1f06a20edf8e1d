"""The run store of this server and who may do what with its runs; the data sets and the device, loaded once
per server; submitting a run for this learner."""
from __future__ import annotations

import os

import streamlit as st

from core.engine import InvalidSpec, RunSpec, RunStore, default_root

from .identity import me
from .server import server_threads, start_pump


@st.cache_resource
def in_app():
    """Call first on every page. A link straight to a page (e.g. /q2_pixelcnn) on a server that has not run
    app.py yet makes Streamlit run that page file alone, in its old pages-folder mode: no app sidebar, and every
    file in pages/ listed as a page. Leave that mode and rerun, so app.py's navigation serves the same URL."""
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False  # what st.navigation itself sets
        st.rerun()


@st.cache_resource
def _store(root: str) -> RunStore:
    import torch

    from core import lab

    torch.set_num_threads(server_threads())   # sampling in the server leaves the training runs their cores
    return lab.store(root)


def store() -> RunStore:
    """The run store of this server (one per runs folder; `ARLAB_RUNS_DIR` moves it), with its background pump."""
    root = str(default_root())
    os.makedirs(root, exist_ok=True)   # the server's own setting, never a learner's text
    runs = _store(root)
    start_pump(root, runs)   # the pump works on this same object
    return runs


@st.cache_resource(max_entries=8, show_spinner="Loading the data set…")
def load_data(name: str):
    """core.data.load, once per server (not once per rerun of every session)."""
    from core import data

    return data.load(name)


def viewer() -> str | None:
    """The owner whose view listings take (their own runs, pinned runs, runs of no owner); None for an instructor,
    who sees everyone's. Pass it to every listing: sources.choices, finished_runs, report.choices, ..."""
    who = me()
    return None if who.instructor else who.owner


def my_runs(question: str | None = None, dataset: str | None = None) -> list[dict]:
    """The runs this learner may see: their own, the pinned ones and those of no owner (an instructor: all)."""
    return store().list(question, dataset, owner=viewer())


def may_view(run_id: str, token: str = "") -> bool:
    """May this learner open the run (its page, samples, downloads)? Owner, instructor, pinned, no owner, or a link
    with the run's share token."""
    who = me()
    return store().may_view(run_id, who.owner, who.instructor, token or "")


def board_on() -> bool:
    """Is the class board shown to learners? (An instructor's switch, kept in the runs folder.)"""
    return (store().root / ".board-on").exists()


def set_board(on: bool) -> None:
    store().root.mkdir(parents=True, exist_ok=True)
    f = store().root / ".board-on"
    f.touch() if on else f.unlink(missing_ok=True)


def can_change(run_id: str) -> bool:
    """May this learner cancel or delete the run? Its owner and instructors may."""
    try:
        return store().owns(run_id, me().owner, me().instructor)
    except KeyError:
        return False


def submit(spec: RunSpec) -> str:
    """Queue a run for this learner (raises InvalidSpec naming every problem; nothing is written then). Every run a
    page submits is the viewer's (owner and name are set here, whatever the page passed), and every model it names
    (its question's source fields, `init`) must be one this learner may use: shipped, or a run they may see."""
    import dataclasses

    from core.questions import get
    from core.sources import run_id_of

    who = me()
    if not who.owner:
        raise InvalidSpec({"owner": "this page does not know who you are: reload it, then try again"})
    spec = dataclasses.replace(spec, owner=who.owner, owner_name=who.name)
    try:
        named = [(name, spec.hparams.get(name)) for name in get(spec.question).source_fields]
    except KeyError:
        named = []
    errors = {}
    for name, value in named + [("init", spec.init)]:
        rid = run_id_of(value)
        if rid and store().dir_exists(rid) and not may_view(rid):
            errors[name] = "that run is not yours to use (pick your own run or a shipped model)"
    if errors:
        raise InvalidSpec(errors)
    return store().submit(spec)


@st.cache_resource
def device() -> str:
    from core.device import pick_device

    return pick_device()
