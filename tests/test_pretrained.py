"""The shipped checkpoints: every file is in the manifest, verified by hash, and loads into its model."""
import shutil

import pytest
import torch

from core import checkpoints
from core.checkpoints import CheckpointError, load_into, load_pretrained


def build(entry, config):
    from core.sources import build as build_from_config, kind_of

    assert kind_of({"question": entry["question"], **config}) == entry["question"]
    return build_from_config({"question": entry["question"], **config})


ENTRIES = checkpoints.manifest()


def test_every_file_has_one_manifest_entry():
    files = sorted(p.name for p in checkpoints.PRETRAINED.glob("*.safetensors"))
    names = sorted(e["file"] for e in ENTRIES)
    assert files == names
    for e in ENTRIES:
        for key in ("name", "question", "dataset", "preset", "file", "config", "test_loss", "epochs",
                    "train_seconds", "device", "created", "sha256"):
            assert key in e, (e["name"], key)


@pytest.mark.parametrize("name", [e["name"] for e in ENTRIES])
def test_each_checkpoint_loads_into_its_model(name):
    state, config, entry = load_pretrained(name)
    model = load_into(build(entry, config), state, name)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_a_corrupt_checkpoint_is_refused(tmp_path):
    entry = ENTRIES[0]
    bad = tmp_path / "pretrained"
    bad.mkdir()
    data = (checkpoints.PRETRAINED / entry["file"]).read_bytes()
    (bad / entry["file"]).write_bytes(data[: len(data) // 2])           # a truncated download
    shutil.copy(checkpoints.MANIFEST, bad / "manifest.json")
    with pytest.raises(CheckpointError, match="sha256"):
        load_pretrained(entry["name"], bad / "manifest.json")
    with pytest.raises(CheckpointError, match="cannot be read"):
        checkpoints.read_checkpoint(bad / entry["file"])              # no hash given: the parse fails clearly


def test_shipped_pixelcnn_reproduces_its_test_loss_on_a_subset():
    from core import data
    from core.models.pixelcnn import loss

    state, config, entry = load_pretrained("q2a-shapes")
    model = load_into(build(entry, config), state).eval()
    _, test = data.load("shapes")
    with torch.no_grad():
        sub = torch.as_tensor(test[:1000]).long()
        got = sum(loss(model, sub[i:i + 250]).item() for i in range(0, 1000, 250)) / 4
    assert abs(got - entry["test_loss"]) < 0.25 * entry["test_loss"]   # a 1000-image subset of 4,491


def test_entries_of_generated_sets_say_which_generator_version_they_were_trained_on():
    """A checkpoint trained on an older generator of its set is evaluated on that version's images and says so on
    its pages; entries of the current version (or of real data) carry no note."""
    from core import data, sources

    for e in ENTRIES:
        spec = data.SETS.get(e["dataset"], {})
        v = e.get("data_version")
        if v is None or v == spec.get("version"):
            assert sources.data_note(e) is None, e["name"]
        else:
            assert v in spec["older"], e["name"]  # still made on request, so the entry can be re-evaluated
            note = sources.data_note(e)
            assert f"generator v{v}" in note and f"now v{spec['version']}" in note, note
    fake = {"name": "x", "dataset": "mnist-colored", "data_version": 1}
    assert "earlier look" in sources.data_note(fake)
    assert sources.data_note({**fake, "data_version": data.SETS["mnist-colored"]["version"]}) is None
