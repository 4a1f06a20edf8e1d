"""The data cache: where files live, checksums, atomic writes, downloads, a text progress bar.

Cache folder: `$ARLAB_DATA_DIR` if set, else `<repo>/data_cache/` (git-ignored). Every file is written to a
temporary name in the same folder and moved into place with `os.replace`, so a reader never sees a
half-written file; every real file is checked against a known checksum before it is used.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 5.0  # canonical HTTPS sources: fail fast when the network is not there


def cache_dir() -> Path:
    return Path(os.environ.get("ARLAB_DATA_DIR") or REPO / "data_cache")


def path(*parts: str) -> Path:
    return cache_dir().joinpath(*parts)


# ----------------------------------------------------------------------------- errors
def fetch_command(name: str) -> str:
    return f"python -m core.data fetch {name}"


class DataNotFetched(Exception):
    """A data set is not in the cache (or not valid there); the message names the command that fetches it."""

    def __init__(self, name: str, why: str = "not fetched yet", command: str | None = None):
        self.name, self.why, self.command = name, why, command or fetch_command(name)
        super().__init__(f"data set '{name}': {why}. Fetch it with:  {self.command}")


class DataCorrupt(DataNotFetched):
    """A cached file failed its checksum (corrupt, truncated or replaced); fetching again repairs it."""


# ----------------------------------------------------------------------------- checksums
def file_hash(p, algo: str = "md5") -> str:
    h = hashlib.new(algo)
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(p, expected: str, algo: str = "md5") -> bool:
    """True when the file exists and its hash matches."""
    return Path(p).is_file() and file_hash(p, algo) == expected


# ----------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(dest):
    """Yield a temporary path next to `dest`; on success it replaces `dest` in one step, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; cached data is not
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(dest, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def scratch_dir():
    """A temporary folder inside the cache (same disk, so moving files out of it is cheap), always removed."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache_dir()))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sweep_leftovers(max_age_s: float = 3600.0) -> list[Path]:
    """Remove what a killed fetch left in the cache: `.fetch-*` scratch folders and `.*.part` files older than
    max_age_s (a younger one may belong to a fetch running now). They are never read, only wasted space.
    -> the paths removed."""
    root = cache_dir()
    if not root.is_dir():
        return []
    now, gone = time.time(), []
    for p in [*root.glob(".fetch-*"), *root.rglob(".*.part")]:
        try:
            if now - p.stat().st_mtime < max_age_s:
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            gone.append(p)
        except OSError:
            pass  # gone already, or not ours to remove: leave it
    return gone


def cached_npz(fname: str, make, log=print):
    """Arrays from `<cache>/generated/<fname>`, made by `make()` and saved (atomically) when missing or unreadable.

    -> (dict of arrays, "present" | "generated"). A truncated or altered file fails the zip's CRC-32 check
    (or its header parse) and is made again.
    """
    import numpy as np

    p = path("generated", fname)
    if p.is_file():
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}, "present"
        except Exception as e:  # noqa: BLE001 - any read failure means: make it again
            log(f"{fname}: cached file is unreadable ({type(e).__name__}: {e}); making it again")
    arrays = make()
    try:
        with atomic_path(p) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:  # a read-only or full disk: still hand out the arrays, just uncached
        log(f"{fname}: could not cache ({e}); using it uncached")
    return arrays, "generated"


# ----------------------------------------------------------------------------- progress
class Progress:
    """A one-line text progress bar on stdout (redrawn in place on a terminal, printed once when done otherwise)."""

    def __init__(self, total: int, label: str, unit: str = "MB", scale: float = 1e6, width: int = 30):
        self.total, self.label, self.unit, self.scale, self.width = max(total, 1), label, unit, scale, width
        self.done, self.t0 = 0, time.time()
        self.tty = sys.stdout.isatty()

    def _line(self) -> str:
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * self.width)
        return (f"  {self.label} [{bar:<{self.width}}] {frac:4.0%} "
                f"{self.done / self.scale:.1f}/{self.total / self.scale:.1f} {self.unit} {time.time() - self.t0:.1f}s")

    def update(self, n: int) -> None:
        self.done += n
        if self.tty:
            sys.stdout.write("\r" + self._line())
            sys.stdout.flush()

    def close(self) -> None:
        sys.stdout.write(("\r" if self.tty else "") + self._line() + "\n")
        sys.stdout.flush()


# ----------------------------------------------------------------------------- sources
class SourceFailed(Exception):
    """A source could not deliver (unreachable, tool missing, wrong checksum); the message is one line."""


def download(url: str, dest, label: str, timeout: float = TIMEOUT_S) -> None:
    """HTTPS download with a progress bar, written atomically. Raises SourceFailed with a one-line reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, atomic_path(dest) as tmp:
            bar = Progress(int(r.headers.get("Content-Length") or 0), label)
            with open(tmp, "wb") as f:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
            bar.close()
    except Exception as e:  # noqa: BLE001 - any network failure is a failed source
        raise SourceFailed(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None


def run_tool(cmd: list[str], timeout: float = 180) -> None:
    """Run a package client (npm, pip); on failure raise SourceFailed with its last line of output."""
    if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
        raise SourceFailed(f"`{cmd[0]}` is not installed")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"`{' '.join(cmd[:3])}` timed out after {timeout:.0f}s") from None
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        raise SourceFailed(f"`{' '.join(cmd[:3])}` exited {p.returncode}: {lines[-1] if lines else ''}")


def pip_download(requirement: str, dest_dir, sha256: str) -> Path:
    """`pip download --no-deps` one pinned wheel and check its sha256 before anyone opens it."""
    run_tool([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--timeout", "15",
              "--retries", "1", "--disable-pip-version-check", "-d", str(dest_dir), requirement])
    wheels = list(Path(dest_dir).glob("*.whl"))
    if len(wheels) != 1:
        raise SourceFailed(f"pip download {requirement} left {len(wheels)} wheels")
    return check_sha256(wheels[0], sha256)


def npm_pack(spec: str, dest_dir, sha256: str) -> Path:
    """`npm pack` (downloads the package tarball, runs no scripts) and check its sha256."""
    run_tool(["npm", "pack", spec, "--pack-destination", str(dest_dir), "--fetch-retries=1",
              "--fetch-timeout=15000", "--loglevel=error"])
    tgz = list(Path(dest_dir).glob("*.tgz"))
    if len(tgz) != 1:
        raise SourceFailed(f"npm pack {spec} left {len(tgz)} tarballs")
    return check_sha256(tgz[0], sha256)


def check_sha256(p: Path, sha256: str) -> Path:
    got = file_hash(p, "sha256")
    if got != sha256:
        raise SourceFailed(f"{p.name}: sha256 {got[:16]}... is not the pinned {sha256[:16]}...")
    return p
