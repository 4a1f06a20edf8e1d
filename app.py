"""Autoregressive Lab: train and sample autoregressive models live.  Run:  streamlit run app.py"""
from pathlib import Path

import streamlit as st

import ui
from core.questions import QUESTIONS

st.set_page_config(page_title="Autoregressive Lab", page_icon="🧪", layout="wide")

HERE = Path(__file__).parent
# (file, title, icon); the questions come from the one list in core.questions; a page appears once its file exists
PAGES = {
    "Lab": [("pages/home.py", "Home", "🏠"), ("pages/data_sets.py", "Data sets", "🗂️"), ("pages/runs.py", "Runs", "📋"),
            ("pages/report.py", "Report", "📝")],
    "Questions": [(f"pages/{q.page}", q.title, q.icon) for q in QUESTIONS],
}
if ui.me().instructor or ui.board_on():   # the class board: off unless the instructor turns it on
    PAGES["Lab"].append(("pages/board.py", "Class board", "🏆"))
nav = {section: [st.Page(f, title=t, icon=i, default=(f == "pages/home.py")) for f, t, i in items if (HERE / f).exists()]
       for section, items in PAGES.items()}
page = st.navigation(nav)

with st.sidebar:
    counts = ui.sidebar()   # before the page: a page that stops early (st.stop) keeps its sidebar
page.run()
counts()   # again after it, so the counts include what the page just did (a run it queued)
