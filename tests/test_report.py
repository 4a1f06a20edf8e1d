"""The homework's deliverables: the command line, the course's figure files, summary.json, the write-up, the page."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core import checkpoints, report

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env=None, timeout=600):
    import os

    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def cli_in_process(capsys, *args) -> tuple[int, str]:
    """`python -m core ARGS` in this process (argparse and the checks before any run): (exit code, stderr)."""
    from core import __main__ as main_mod

    try:
        code = main_mod.main(list(args))
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_names_follow_the_course():
    assert report.figure_names("q1a", "1d-1") == ["q1_a_dset1_train_plot.png", "q1_a_dset1_learned_dist.png"]
    assert report.figure_names("q2b", "mnist-colored") == ["q2_b_dset2_train_plot.png", "q2_b_dset2_samples.png"]
    assert report.figure_names("q3c", "mnist-colored") == ["q3_c_dset2_timing_plot.png",
                                                           "q3_c_no_cache_dset2_samples.png",
                                                           "q3_c_with_cache_dset2_samples.png"]
    assert report.figure_names("q4a", "mnist-v2") == ["q4_a_dset2_samples.png"]
    assert report.figure_names("q5", "poetry") == ["q5_a_train_plot.png", "q5_a_samples.png"]
    assert report.dataset_name("q2a", "2") == "mnist" and report.dataset_name("q2a", "shapes") == "shapes"
    with pytest.raises(report.ReportError, match="1 = shapes, 2 = mnist"):
        report.dataset_name("q2a", "3")


def test_run_q1a_writes_the_q1_figures_and_a_summary(runs_dir, tmp_path):
    out = tmp_path / "figs"
    r = cli("run", "q1a", "--dataset", "1", "--epochs", "2", "--out", str(out), env={"ARLAB_RUNS_DIR": str(runs_dir)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.png")) == ["q1_a_dset1_learned_dist.png", "q1_a_dset1_train_plot.png"]
    assert all(p.stat().st_size > 5000 for p in out.glob("*.png"))
    summary = json.loads((out / "summary.json").read_text())
    item = summary["items"][0]
    assert item["question"] == "q1a" and item["unit"] == "nats/dim" and item["reference"] == 2.562
    assert item["source"].startswith("run:") and 2.0 < item["test_loss"] < 3.5
    assert "q1a 1d-1" in r.stdout and "100%" in r.stderr        # a progress bar went to the terminal


def test_clear_errors_for_unknown_question_data_set_and_device(tmp_path, capsys):
    code, err = cli_in_process(capsys, "run", "q9", "--dataset", "1", "--out", str(tmp_path))
    assert code == 2 and "invalid choice: 'q9'" in err
    code, err = cli_in_process(capsys, "run", "q2a", "--dataset", "7", "--out", str(tmp_path))
    assert code == 2 and "q2a has no data set '7' (use 1 = shapes, 2 = mnist)" in err
    import torch

    if not torch.cuda.is_available():   # asking for a GPU that is not there is refused before anything runs
        code, err = cli_in_process(capsys, "run", "q1a", "--dataset", "1", "--device", "cuda", "--out", str(tmp_path))
        assert code == 2 and "device 'cuda' is not available" in err
    assert not any(tmp_path.iterdir())


def test_pretrained_figures_and_what_a_checkpoint_cannot_give(tmp_path):
    if not checkpoints.find(name="q3a-shapes"):
        pytest.skip("q3a-shapes is not shipped")
    item = report.from_pretrained("q3a-shapes", tmp_path)
    assert list(item.figures) == ["q3_a_dset1_samples.png"]
    assert "training curve" in item.missing["q3_a_dset1_train_plot.png"]
    assert item.test_loss == checkpoints.find(name="q3a-shapes")[0]["test_loss"]


def test_eval_pretrained_passes_on_the_manifest_and_fails_on_a_tampered_loss(monkeypatch, capsys):
    """`python -m core eval-pretrained NAME` (in-process: the same main) recomputes the checkpoint's full test loss,
    which matches the manifest; against a manifest whose loss was changed by 1% it exits 1."""
    name = "q5-poetry"   # the shipped checkpoint whose whole test set scores fastest (a few seconds)
    if not checkpoints.find(name=name):
        pytest.skip(f"{name} is not shipped")
    from core import __main__ as main_mod
    from core import evaluate

    got, real = {}, evaluate.recompute

    def spy(n, device="cpu", **kw):
        got[n] = real(n, device=device, **kw)
        return got[n]

    monkeypatch.setattr(evaluate, "recompute", spy)
    assert main_mod.main(["eval-pretrained", name]) == 0
    assert f"ok       {name}" in capsys.readouterr().out
    assert got[name] == pytest.approx(checkpoints.find(name=name)[0]["test_loss"], rel=1e-3)
    # the same check against a manifest whose loss was changed
    tampered = [{**e, "test_loss": e["test_loss"] * 1.01} if e["name"] == name else e for e in checkpoints.manifest()]
    monkeypatch.setattr(checkpoints, "manifest", lambda path=None: tampered)
    monkeypatch.setattr(evaluate, "recompute", lambda n, device="cpu", **kw: got[n])
    assert main_mod.main(["eval-pretrained", name]) == 1
    assert f"MISMATCH {name}" in capsys.readouterr().out


def test_report_writes_summary_writeup_and_lists_what_is_missing(runs_dir, tmp_path, monkeypatch):
    """No runs and no checkpoints: every item is listed missing, never faked; the write-up still renders."""
    monkeypatch.setattr(checkpoints, "manifest", lambda path=None: [])
    out = report.write_all(tmp_path, "runs")
    items = out["items"]
    assert len(items) == sum(len(v) for v in report.DSETS.values())
    assert all(not it.figures and it.missing for it in items)
    md = out["markdown"].read_text()
    assert md.count("**FILL IN HERE**") == len(items) - 2 and "q3_c_dset1_timing_plot.png: missing" in md
    assert out["pdf"].read_bytes()[:4] == b"%PDF"
    summary = json.loads(out["summary"].read_text())
    assert {(i["question"], i["dataset"]) for i in summary["items"]} == {(q, d) for q in report.DSETS
                                                                         for d in report.DSETS[q]}


def test_data_fraction_trains_on_a_share_and_says_so(capsys):
    from core.lab import spec_for

    s = spec_for("q3a", "mnist", "quick", 1, "cpu", 0, 0.02)
    assert s.hparams["data_fraction"] == 0.02 and s.preset == "quick, 1 epochs, 2% of the training data"
    assert spec_for("q2b", "shapes-colored", "quick", None, "cpu", 0, 0.5).hparams["subset"] == 0.5
    assert spec_for("q1a", "1d-1", "quick", None, "cpu", 0, 0.5).preset == "quick"  # Q1 has no subset setting
    code, err = cli_in_process(capsys, "all", "--data-fraction", "0", "--out", "unused")
    assert code == 2 and "--data-fraction must be above 0" in err


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_all_quick_writes_every_figure_it_can(runs_dir, tmp_path):
    """The whole pipeline on 2% of every training set, one epoch each (about 25 minutes on 2 CPU cores)."""
    out = tmp_path / "all"
    r = cli("all", "--preset", "quick", "--epochs", "1", "--data-fraction", "0.02", "--jobs", "2", "--out", str(out),
            env={"ARLAB_RUNS_DIR": str(runs_dir)}, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    expected = {n for q in report.DSETS for d in report.DSETS[q] for n in report.figure_names(q, d)}
    assert expected <= {p.name for p in out.glob("*.png")}, expected - {p.name for p in out.glob("*.png")}


def test_report_page_renders_builds_and_its_zip_holds_what_it_lists(runs_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.lab import RunSpec
    from tests.conftest import run_in_process

    monkeypatch.setattr(checkpoints, "manifest", lambda path=None: [])
    run_in_process(runs_dir, RunSpec("q1b", "1d-1", {"epochs": 1}))   # one finished run for the report to use
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/report.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Build the report" in i.value for i in at.info)
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("arlab-report-*"))
    next(b for b in at.button if b.label == "Build the report").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(Path(tempfile.gettempdir()).glob("arlab-report-*")) == before   # its temporary folder is gone
    built = at.session_state["report:out"]
    listed = sorted(n for it in built["items"] for n in it.figures)
    assert listed == ["q1_b_dset1_learned_dist.png", "q1_b_dset1_train_plot.png"]
    with zipfile.ZipFile(__import__("io").BytesIO(built["zip"])) as z:
        assert sorted(z.namelist()) == sorted(listed + ["summary.json", "writeup.md", "writeup.pdf"])
    captions = [c for im in at.get("image") for c in im.captions]
    assert "q1_b_dset1_train_plot.png" in captions and "q1_b_dset1_learned_dist.png" in captions


def test_notebook_pixelcnn_functions_check_image_shape_against_the_data():
    import numpy as np

    from core import homework

    x = np.zeros((8, 20, 20, 1), np.uint8)
    for fn in (homework.q2_a, homework.q2_b, homework.q3_a):
        with pytest.raises(ValueError, match="does not match the data's images"):
            fn(x, x, (28, 28, 1), 1)


def test_report_takes_the_best_run_and_honours_prefer_shipped(runs_dir):
    import time

    from tests.test_compare import _fake_finished

    good = _fake_finished(runs_dir, "q1a", "1d-1", 2.5506)
    time.sleep(0.01)
    newest = _fake_finished(runs_dir, "q1a", "1d-1", 2.5934)
    assert report.choices("q1a", "1d-1", runs_dir) == [f"run:{good}", f"run:{newest}"]   # best, not newest
    if checkpoints.find(name="q2a-shapes"):
        rid = _fake_finished(runs_dir, "q2a", "shapes", 0.05)
        assert report.choices("q2a", "shapes", runs_dir) == [f"run:{rid}", "pretrained:q2a-shapes"]
        assert report.choices("q2a", "shapes", runs_dir, "pretrained") == ["pretrained:q2a-shapes", f"run:{rid}"]
        assert report.choices("q2a", "shapes", runs_dir, "runs-only") == [f"run:{rid}"]


def test_report_page_switches_every_item_to_the_shipped_checkpoint_when_asked(runs_dir):
    from streamlit.testing.v1 import AppTest

    from tests.test_compare import _fake_finished

    if not checkpoints.find(name="q2a-shapes"):
        pytest.skip("no q2a-shapes shipped")
    rid = _fake_finished(runs_dir, "q2a", "shapes", 0.05)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/report.py").run()
    assert at.selectbox(key="report:src:runs:q2a:shapes").value == f"run:{rid}"
    at.radio(key="report:prefer").set_value("pretrained").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="report:src:pretrained:q2a:shapes").value == "pretrained:q2a-shapes"


def test_the_pdfs_first_page_sets_each_number_beside_its_reference_and_says_how_to_make_what_is_missing():
    from core.questions import get

    done = report.Item("q1a", "1d-1", "run:abc", 2.5506, "nats/dim",
                       missing={"q1_a_dset1_learned_dist.png": "the run has no learned distribution"})
    rows = report.first_page_rows([done, report.Item("q2a", "mnist")])
    ref = get("q1a").reference.get("1d-1")
    assert rows[0].startswith("q1a · dataset 1 (1d-1): 2.5506 nats/dim") and rows[0].endswith("from run:abc")
    assert ref is None or f"course's reference {ref}" in rows[0]
    assert "missing q1_a_dset1_learned_dist.png" in rows[1] and "python -m core run q1a --dataset 1" in rows[1]
    assert rows[2].startswith("q2a · dataset 2 (mnist): MISSING") and "students" in rows[2]
    assert rows[2].endswith("No finished run and no shipped checkpoint; make it: "
                            "python -m core run q2a --dataset 2 --preset quick")
    assert not any("FILL IN" in r for r in rows)
