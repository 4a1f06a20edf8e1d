"""Class board: the best finished run of each question and data set, against the course's reference — shown to the
class only when the instructor turns it on."""
import streamlit as st

from core import compare
from core.questions import get
import ui

ui.in_app()

st.title("🏆 Class board")
who, store = ui.me(), ui.store()
on = ui.board_on()
if who.instructor:
    want = st.toggle("Show the board to the class", value=on,
                     help="Off by default: learners then see only that it is off. Names are the ones learners gave.")
    if want != on:
        ui.set_board(want)
        st.rerun()
elif not on:
    st.info("The class board is off. Your instructor can turn it on.")
    st.stop()


def reference(question, dataset):
    try:
        return get(question).reference.get(dataset)
    except KeyError:
        return None


st.caption("For each question and data set: the finished run with the lowest final test loss (lower is better, in "
           "the unit shown), who trained it, how many finished runs tried, and the course's reference where it "
           "gives one. Every number is a final test loss on the full test set.")
rows = compare.board(store.entries(), reference)
if not rows:
    st.info("No finished runs yet.")
    st.stop()
st.dataframe(rows, hide_index=True, width="stretch",
             column_config={"run": st.column_config.TextColumn("run", help="open it on the Runs page")})
