"""The app as the README serves it: localhost, and no file watcher."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_served_config_watches_no_files():
    """Streamlit's watcher woke on every event a worker appended under runs/ and slowed training 10-20x while a
    browser had the app open. The config the README's command serves with must keep it off."""
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('server.fileWatcherType'), config.get_option('server.runOnSave'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("STREAMLIT_")})
    assert out.stdout.split()[-2:] == ["none", "False"], out.stdout
    lab = (ROOT / "lab.sh").read_text()
    app_branch = lab[lab.index("  app)"):lab.index("  test)")]
    # the only watcher flags in the served command are the opt-in developer ones
    assert re.findall(r"fileWatcherType \w+", app_branch) == ["fileWatcherType poll"]
    assert 'ARLAB_DEV:-0}" = 1 ]' in app_branch
