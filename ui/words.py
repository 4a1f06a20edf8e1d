"""How the lab words things for a learner: counts, a learner's own text made safe for Markdown, errors without
the server's paths."""
from __future__ import annotations

import re

from core.engine import default_root


def plural(n: int, word: str) -> str:
    """"1 sample", "2 samples"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&])")


def text(s) -> str:
    """Anything a learner typed (a name, a reason), safe inside st.markdown / st.warning / st.info: every Markdown
    and HTML character escaped, so it shows as the plain text it is (no links, images or emphasis)."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(s).split()))


def plain(e) -> str:
    """An error's text for a learner: no absolute paths of the server (the project and the runs folder are named
    relatively)."""
    from core import ROOT

    from core.reasons import pathless

    return pathless(str(e).replace(str(default_root()), "runs").replace(f"{ROOT}/", "").replace(str(ROOT), "."))
