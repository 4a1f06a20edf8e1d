import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests, deselected by default (run with -m slow)")
    config.addinivalue_line("markers", "browser: drives the real app in headless Chromium")
    config.addinivalue_line("markers", "ray: runs on a real local Ray head (select with -m ray)")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """A private runs/ folder, so tests never touch the user's runs."""
    d = tmp_path / "runs"
    monkeypatch.setenv("ARLAB_RUNS_DIR", str(d))
    return d
