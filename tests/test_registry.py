"""A question is the one place that knows it: a toy question registered in the registry alone is rebuilt by
core.sources, scored by core.evaluate and written up by core.report, with no edit to any of them."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core import checkpoints, evaluate, questions, report, sources
from core.questions.base import Field, Question


class ToyModel(torch.nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((n,), 0.5))


class ToyQ(Question):
    key, title = "qz", "Toy"
    datasets = ("1d-1", "1d-2")
    fields = (Field("epochs", 1, 1, 10), Field("batch_size", 8, 1, 64))
    presets = {"quick": {}}
    heading = "Question Z: a toy"
    unit = "nats/dim"

    def rebuild(self, config):
        return ToyModel(int(config["n"]))

    def test_loss(self, model, config, test, loaded, device, batch_size):
        return float(model.w.detach().sum()) + len(test)

    def sample_levels(self, dataset):
        return 2

    def checkpoint_samples(self, model, config, entry, seed, device):
        return np.zeros((4, 5, 5, 1), np.uint8)


TOY = ToyQ()


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """The toy registered under "qz", with one shipped checkpoint "qz-1d-1" in a private pretrained/ folder."""
    monkeypatch.setitem(questions.REGISTRY, "qz", f"{__name__}:TOY")
    path = tmp_path / "pretrained"
    path.mkdir()
    checkpoints.save_checkpoint(path / "qz.safetensors", ToyModel(3), {"question": "qz", "n": 3})
    entry = {"name": "qz-1d-1", "question": "qz", "dataset": "1d-1", "file": "qz.safetensors", "test_loss": 1.25,
             "unit": "nats/dim", "config": {"question": "qz", "n": 3}}
    monkeypatch.setattr(checkpoints, "PRETRAINED", path)
    monkeypatch.setattr(checkpoints, "manifest", lambda path=None: [entry])
    return entry


def test_sources_builds_and_loads_a_registered_question_s_model(toy):
    assert isinstance(sources.build({"question": "qz", "n": 4}), ToyModel)
    model, config = sources.load("pretrained:qz-1d-1")
    assert config == {"question": "qz", "n": 3} and float(model.w.detach().sum()) == pytest.approx(1.5)
    with pytest.raises(sources.SourceMissing, match="is a qz model, not a tokenizer"):
        sources.resolve("pretrained:qz-1d-1", "q4a")


def test_evaluate_scores_a_registered_question_s_checkpoint(toy):
    from core import data

    assert evaluate.recompute("qz-1d-1") == pytest.approx(1.5 + len(data.load("1d-1")[1]))
    with pytest.raises(ValueError, match="new/repeated for Q2/Q3 only"):
        evaluate.recompute("qz-1d-1", images="new")


def test_report_writes_up_a_registered_question(toy, tmp_path):
    assert "qz" in report.QUESTIONS and report.DSETS["qz"] == ("1d-1", "1d-2")
    assert report.HEADINGS["qz"] == "Question Z: a toy" and report.dataset_name("qz", "2") == "1d-2"
    assert report.figure_names("qz", "1d-2") == ["qz_a_dset2_train_plot.png", "qz_a_dset2_samples.png"]
    # from a shipped checkpoint: its samples drawn, its train plot missing
    item = report.from_pretrained("qz-1d-1", tmp_path / "out")
    assert list(item.figures) == ["qz_a_dset1_samples.png"] and item.test_loss == 1.25
    assert "no training curve" in item.missing["qz_a_dset1_train_plot.png"]
    # from a finished run: its losses and saved samples
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    np.save(run_dir / "samples.npy", np.ones((4, 5, 5, 1), np.uint8))
    events = [{"type": "test", "loss": 3.0, "epoch": 0}] + [{"type": "train", "loss": 3.0 - i / 10, "step": i + 1}
                                                             for i in range(5)] + [{"type": "test", "loss": 2.5}]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    store = SimpleNamespace(root=tmp_path / "runs", dir=lambda rid: run_dir,
                            spec=lambda rid: SimpleNamespace(question="qz", dataset="1d-1"),
                            status=lambda rid: {"state": "done", "result": {"test_loss": 2.5}},
                            events=lambda rid, offset=0: (events, 0))
    item = report.from_run(store, "r1", tmp_path / "out")
    assert sorted(item.figures) == ["qz_a_dset1_samples.png", "qz_a_dset1_train_plot.png"], item.missing
    assert item.unit == "nats/dim" and item.test_loss == 2.5
    # and the whole write-up, from its best source
    items = report.collect(tmp_path / "all", questions=("qz",), runs_root=tmp_path / "none")
    assert [(it.question, it.dataset, it.source) for it in items] == [("qz", "1d-1", "pretrained:qz-1d-1"),
                                                                      ("qz", "1d-2", "")]
    assert "## Question Z: a toy" in report.writeup_markdown(items)
