"""Reasons in plain text: what a page, a report, a summary or a download says went wrong, never with a path of the
server. One pass (`pathless`) that every reason goes through: an OSError names its file alone; any absolute path in
a message becomes its last part ("samples.npy"); the project's own folder reads ".", the runs folder "runs"."""
from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

# an absolute path: a "/" that starts a word (not inside "nats/dim", "1/2" or a URL's "//"), then path characters
_ABS = re.compile(r"(?<![\w.:/~-])(?:~|/)(?:[^\s'\"()<>,;:|*?]+)")


def _last(m: re.Match) -> str:
    name = PurePosixPath(m.group().rstrip("/.")).name
    return name or "a folder"


def pathless(reason) -> str:
    """An error or a message -> the same words with no absolute path in them."""
    if isinstance(reason, OSError) and getattr(reason, "filename", None):
        why = reason.strerror or type(reason).__name__
        text = f"{why}: {PurePosixPath(os.fsdecode(reason.filename)).name}"
    else:
        text = str(reason)
    return _ABS.sub(_last, text)
