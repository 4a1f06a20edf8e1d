"""Runs: every run on disk; compare several on one chart; open one to watch, scrub, download, cancel or delete."""
import datetime as dt

import streamlit as st

from core import compare, viz
from core.questions import get
import ui

ui.in_app()

st.title("📋 Runs")
st.caption("Every training run is a folder under `runs/`: its spec, status and events. They survive page reloads "
           "and server restarts; a run whose worker died is marked failed with the reason.")
store = ui.store()
who = ui.me()


def _now(entry):
    """A listed run as it is now: the listing is shared by every session for a second, so a run it calls active may
    have just ended (then the picker's label would say "running · —" while the monitor says done)."""
    if entry["status"].get("state") not in ("queued", "running"):
        return entry
    try:
        return {**entry, "status": store.status(entry["id"])}
    except (KeyError, OSError, ValueError):
        return entry


scope = "yours"
if who.instructor:   # everyone's first: the class's runs are what an instructor comes here for
    scope = st.radio("Show", ["everyone's", "yours"], horizontal=True, key="runs:scope",
                     help="As an instructor you may cancel, delete and pin anyone's run; pinned runs are shown to "
                          "the whole class.")
runs = store.list(owner=None if scope == "everyone's" else who.owner)
# a link shows the runs it names that this learner may open: their own, pinned ones, and one whose share token it carries
named = set(st.query_params.get_all("compare")) | {st.query_params.get("run")}
ui.share_for(None, tuple(i for i in named if i))   # a link's token: kept in this session, out of the address
linked = named | set(ui.shared_runs())
refused = [i for i in linked if i and store.dir_exists(i) and not ui.may_view(i, ui.share_for(i))]
runs += [e for e in store.entries() if e["id"] in linked and e not in runs and e["id"] not in refused]
runs = [_now(r) for r in runs]
if refused:
    st.warning("A run this link names is not yours to open (its owner can share it with the Share button).",
               icon="🔒")
if not runs:
    others = len(store.list(owner=None)) if who.instructor else 0
    st.info(f"None of yours yet; {ui.plural(others, 'run')} by others: pick **everyone's** above to see them."
            if others else "No runs yet. Start one from a question page.")
    st.stop()
by_id = {r["id"]: r for r in runs}
use, keep_gb = store.disk_use(), store.policy.keep_gb
st.caption(f"Your runs take {use.get(who.owner, 0) / 2**20:,.1f} MB of this server's disk"
           + (f" (all runs may take {keep_gb:g} GB; over that, the oldest finished run of whoever's runs take the "
              "most goes first)" if keep_gb else "") + ".")
if who.instructor and use:
    with st.expander("Disk per learner"):
        names = {e["spec"].get("owner") or "": e["spec"].get("owner_name") or "" for e in store.entries()}
        st.dataframe([{"learner": ui.display_name(names.get(o)) if o else "no owner (command line)",
                       "MB": round(b / 2**20, 1)} for o, b in sorted(use.items(), key=lambda kv: -kv[1])],
                     hide_index=True)


def _when(ts):
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _loss(r):
    res = r["status"].get("result") or {}
    return f"{res['test_loss']:.4f} {res.get('unit', '')}".strip() if res.get("test_loss") is not None else "—"


def _owner(r):
    mine = r["spec"].get("owner", "") == who.owner
    return ("you" if mine else r["spec"].get("owner_name") or "—") + (" · 📌" if r["pinned"] else "")


def _unit(question):
    try:
        return get(question).unit
    except KeyError:
        return None


def _label(rid):
    r = by_id[rid]
    return (f"{rid} · {r['spec']['question']} · {r['spec']['dataset']} · {r['status'].get('state')} · {_loss(r)}"
            f" · {_owner(r)}")


# ----------------------------------------------------------------------------------------------- the list
c1, c2, c3 = st.columns(3)
questions = sorted({r["spec"]["question"] for r in runs})
f_q = c1.multiselect("Question", questions, key="runs:f:q", placeholder="all")
f_ds = c2.multiselect("Data set", sorted({r["spec"]["dataset"] for r in runs}), key="runs:f:ds", placeholder="all")
f_st = c3.multiselect("State", list(ui.STATE_ICON), key="runs:f:state", placeholder="all")
shown = [r for r in runs if (not f_q or r["spec"]["question"] in f_q) and (not f_ds or r["spec"]["dataset"] in f_ds)
         and (not f_st or r["status"].get("state") in f_st)]
st.dataframe([{"run": r["id"], "owner": _owner(r), "question": r["spec"]["question"], "data set": r["spec"]["dataset"],
               "preset": r["spec"].get("preset") or "custom",
               "state": f"{ui.STATE_ICON.get(r['status'].get('state'), '')} {r['status'].get('state')}",
               "test loss": _loss(r), "created": _when(r["status"].get("created")),
               "reason": r["status"].get("reason", "")} for r in shown], hide_index=True, width="stretch")

# ----------------------------------------------------------------------------------------------- compare
st.subheader("Compare runs")
wanted = [i for i in st.query_params.get_all("compare") if i in by_id]
if "runs:compare" not in st.session_state and wanted:
    st.session_state["runs:compare"] = wanted
picked = st.multiselect("Runs to compare (losses in one unit)", [r["id"] for r in shown] + [i for i in wanted if i not
                        in {r["id"] for r in shown}], key="runs:compare", format_func=_label,
                        placeholder="pick two or more runs")
units = compare.by_unit([by_id[i] for i in picked], _unit)
if len(units) > 1:
    st.warning("These runs' losses are not in one unit (" + "; ".join(f"{u}: {', '.join(ids)}" for u, ids in
               units.items()) + "). Pick runs whose losses share a unit.")
elif picked:
    c1, c2, c3 = st.columns([2, 1, 1])
    weight = c1.slider("smoothing (train loss)", 0.0, 0.99, 0.6, 0.01, key="runs:smooth",
                       help="exponential moving average of the per-minibatch train loss; 0 = raw")
    x = c2.radio("x axis", ["epoch", "seconds"], horizontal=True, key="runs:x")
    log_y = c3.checkbox("log scale", key="runs:log")
    series = [(rid, compare.chained(store, rid, ui.may_view)[0]) for rid in picked]   # a continued run: its whole chain
    unit = next((s.unit for _, s in series if s.unit), "nats")
    st.plotly_chart(viz.compare_curves(series, weight, x, unit, log_y=log_y), key="runs:compare:chart")
    rows, differ = compare.settings_table([store.spec(rid) for rid in picked], picked)
    st.markdown("**Settings** (rows that differ are highlighted)")
    import pandas as pd

    table = pd.DataFrame(rows).set_index("setting")
    names = st.column_config.TextColumn("setting", width=24 + 8 * max(map(len, table.index)))   # never cut
    st.dataframe(table.style.apply(lambda row: ["background-color: #fff3bf" if row.name in differ else ""] * len(row),
                                   axis=1), width="stretch", column_config={"_index": names})
    finals = [(rid, ui.final_grid(rid)) for rid in picked]
    finals = [(rid, g) for rid, g in finals if g is not None]
    if finals:
        st.markdown("**Final samples**")
        for col, (rid, grid) in zip(st.columns(len(finals)), finals):
            col.image(grid, caption=f"{rid} · {_loss(by_id[rid])}")

# ----------------------------------------------------------------------------------------------- one run
st.subheader("One run")
ids = [r["id"] for r in runs]


def _picked():   # the run a learner picks goes into the link, which says which run the page shows
    st.query_params["run"] = str(st.session_state.get("runs:pick") or "").split(" · ")[0]


# the picker is set to the run shown on every run of the page, so it names that run (also one that "Train N more
# epochs" just opened) with its state and loss as they are now, never as they were when it was last drawn
asked = st.query_params.get("run")
st.session_state["runs:pick"] = asked if asked in ids else ids[0]
run_id = st.selectbox("Open a run", ids, key="runs:pick", format_func=_label, on_change=_picked)
try:
    spec = store.spec(run_id)
except KeyError as e:
    st.error(f"This run cannot be shown: {e.args[0]}.")
    st.stop()
st.dataframe([{"setting": k, "value": str(v)} for k, v in
              [("question", spec.question), ("data set", spec.dataset), ("preset", spec.preset or "custom"),
               ("seed", spec.seed), *sorted(spec.hparams.items())]], hide_index=True)
status = store.status(run_id)
state = status.get("state")
where = [f"ran on **{status['host']}**" if status.get("host") else "",
         f"device {status['device']}" if status.get("device") else ""]
handle = status.get("handle") or {}
if handle.get("launcher") == "ray" and hasattr(store.launcher, "job_url") and who.instructor:   # the dashboard: staff only
    where.append(f"[its Ray job]({store.launcher.job_url(handle)})")
if status.get("note"):
    where.append(status["note"])
if any(where):
    st.caption(" · ".join(w for w in where if w))
mine = ui.can_change(run_id)
c1, c2 = st.columns([1, 3])
if c1.button("Delete run", disabled=state in ("queued", "running") or not mine, key="runs:delete",
             help="A queued or running run must be cancelled first (its Cancel button is below)." if mine else
                  "Only its owner (or an instructor) may delete a run."):
    try:
        store.delete(run_id)
        st.rerun()
    except (RuntimeError, KeyError, OSError) as e:
        st.error(str(e))
if spec.owner and spec.owner == who.owner:
    if c2.button("Share this run", key=f"runs:share:{run_id}", icon="🔗",
                 help="Makes a link that opens this run (read-only) for whoever you give it to."):
        st.session_state[f"runs:shared:{run_id}"] = store.share(run_id)
    if store.shared(run_id) and c2.button("Stop sharing", key=f"runs:unshare:{run_id}", icon="🚫",
                                          help="The links made so far stop opening this run; Share makes a new one."):
        store.unshare(run_id)
        st.session_state.pop(f"runs:shared:{run_id}", None)
        st.rerun()
    if st.session_state.get(f"runs:shared:{run_id}"):
        query = f"run={run_id}&share={st.session_state[f'runs:shared:{run_id}']}"
        link = ui.page_address("runs", query)
        if link:
            st.caption("Anyone with this link can open this run (read-only):")
            st.code(link, language=None)
        else:
            st.caption("Anyone with this link can open this run (read-only). Put the app's address before it (the "
                       "part of your browser's address bar before `runs`):")
            st.code(f"runs?{query}", language=None)
if who.instructor:
    pinned = c2.toggle("Pinned for the class", value=by_id[run_id]["pinned"], key=f"runs:pin:{run_id}",
                       help="Pinned runs appear on every learner's Runs page and question pages, and are never pruned.")
    if pinned != by_id[run_id]["pinned"]:
        store.pin(run_id, pinned)
        st.rerun()
def _open(new):   # a run just queued by "Train N more epochs": open it here (the picker follows the link)
    st.query_params["run"] = new
    st.rerun()


ui.run_monitor(run_id, key="runs", compare_link=False, unit=get(spec.question).unit, on_continue=_open)
ui.scrub(run_id, key="runs")
ui.take_home(run_id, key="runs")
