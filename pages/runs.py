"""Runs: every run on disk with its state; open one to see its curve; cancel or delete."""
import datetime as dt

import streamlit as st

import ui

ui.in_app()

st.title("📋 Runs")
st.caption("Every training run is a folder under `runs/`: its spec, status and events. They survive page reloads "
           "and server restarts; a run whose worker died is marked failed with the reason.")
store = ui.store()
store.pump()
runs = store.list()
if not runs:
    st.info("No runs yet. Start one from a question page.")
    st.stop()


def _when(ts):
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


rows = [{"run": r["id"], "question": r["spec"]["question"], "data set": r["spec"]["dataset"],
         "preset": r["spec"].get("preset", ""), "state": f"{ui.STATE_ICON.get(r['status'].get('state'), '')} {r['status'].get('state')}",
         "test loss": (r["status"].get("result") or {}).get("test_loss"),
         "created": _when(r["status"].get("created")), "reason": r["status"].get("reason", "")} for r in runs]
st.dataframe(rows, hide_index=True, width="stretch")

run_id = st.selectbox("Open a run", [r["id"] for r in runs], key="runs:pick")
spec = store.spec(run_id)
st.json({"question": spec.question, "dataset": spec.dataset, "preset": spec.preset, "seed": spec.seed,
         "hyperparameters": spec.hparams}, expanded=False)
c1, c2 = st.columns(2)
state = store.status(run_id).get("state")
if c1.button("Cancel run", disabled=state not in ("queued", "running"), key="runs:cancel"):
    st.toast(f"{store.cancel(run_id)}")
if c2.button("Delete run", disabled=state in ("queued", "running"), key="runs:delete",
             help="A queued or running run must be cancelled first."):
    try:
        store.delete(run_id)
        st.rerun()
    except RuntimeError as e:
        st.error(str(e))
ui.run_monitor(run_id, key="runs")
