"""Cache directory, checksummed downloads and the search for the shared offline datasets.

Downloads go to a temporary file next to the destination, are checked against a known md5,
and only then renamed into place: a failed or corrupt download never leaves a file that a
later call could take for a good one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

__all__ = ["cache_dir", "digest_of", "md5_of", "download_file", "find_shared_datasets"]


def cache_dir() -> Path:
    """``$PHYSAMP_DATA`` if set, else ``~/.cache/physamp``."""
    env = os.environ.get("PHYSAMP_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "physamp"


def digest_of(data_or_path: bytes | str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest (``hashlib`` name, e.g. ``"md5"``, ``"sha256"``) of bytes or of a file read in blocks."""
    h = hashlib.new(algorithm)
    if isinstance(data_or_path, bytes):
        h.update(data_or_path)
        return h.hexdigest()
    with open(data_or_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def md5_of(data_or_path: bytes | str | os.PathLike) -> str:
    """The md5 hex digest of bytes or of a file's contents (:func:`digest_of` with ``"md5"``)."""
    return digest_of(data_or_path, "md5")


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Copy ``url`` to ``dest`` (the one function that touches the network; tests replace it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def download_file(urls: Sequence[str], dest: str | os.PathLike, md5: str | None) -> Path:
    """Download the first mirror in ``urls`` whose content has checksum ``md5`` to ``dest``.

    Writes to a temporary file in ``dest``'s folder, verifies, then renames. Raises
    ``ValueError`` if every mirror answered with the wrong checksum, ``OSError`` if none could
    be reached; in both cases nothing is left at ``dest`` or beside it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    bad_checksum = False
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                _fetch(url, tmp)
            except OSError as exc:
                errors.append(f"{url}: {exc}")
                continue
            got = md5_of(tmp)
            if md5 is not None and got != md5:
                bad_checksum = True
                errors.append(f"{url}: md5 {got}, expected {md5}")
                continue
            os.replace(tmp, dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)
    detail = "; ".join(errors)
    if bad_checksum:
        raise ValueError(f"download of {dest.name} failed its checksum ({detail}); nothing was saved")
    raise OSError(
        f"could not download {dest.name} ({detail}). If this machine is offline, put the file at {dest} "
        "yourself."
    )


def _has_mnist(d: Path) -> bool:
    return (d / "mnist_5k.csv.gz").is_file() and (d / "t10k-images-idx3-ubyte.gz").is_file()


def find_shared_datasets(root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the offline MNIST files (``mnist_5k.csv.gz``, ``t10k-*``), or None.

    Looks, in order, at ``root`` (that folder, or its ``mnist/``, ``datasets/mnist/``), at
    ``$PHYSAMP_SHARED`` (a ``shared`` folder: ``$PHYSAMP_SHARED/datasets/mnist``), then walks up
    from the current directory and from this package looking for ``shared/datasets/mnist`` (the
    layout where the repository sits at ``<root>/main`` beside ``<root>/shared``).
    """
    candidates: list[Path] = []
    for base in ([Path(root)] if root is not None else []) + (
        [Path(os.environ["PHYSAMP_SHARED"])] if os.environ.get("PHYSAMP_SHARED") else []
    ):
        base = base.expanduser()
        candidates += [base, base / "mnist", base / "datasets" / "mnist"]
    if root is None:
        for start in (Path.cwd(), Path(__file__).resolve().parent):
            for parent in (start, *start.parents):
                candidates.append(parent / "shared" / "datasets" / "mnist")
    for c in candidates:
        if _has_mnist(c):
            return c
    return None
