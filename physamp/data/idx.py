"""Reader and writer for the IDX format of MNIST (``train-images-idx3-ubyte`` and friends).

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the data in C order, big-endian. Files may be gzip-compressed; the
reader recognises gzip by its magic bytes, not by the file name.

>>> import numpy as np, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx2-ubyte.gz"
>>> write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3))
>>> read_idx(p).tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "write_idx", "read_maybe_gzip"]

# IDX type byte -> numpy big-endian dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in _IDX_DTYPES.items()}

_FIX = "Delete it and download it again (load_dataset(..., download=True)) or copy a good copy in its place."


def read_maybe_gzip(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``, gunzipped when the file starts with the gzip magic bytes."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc}). {_FIX}") from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file into a native-endian array."""
    if len(data) < 4:
        raise ValueError(f"{source}: too short to be an IDX file ({len(data)} bytes). {_FIX}")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{source}: bad IDX magic number {data[:4].hex()} (expected 0000 then a type byte in "
            f"{sorted(hex(c) for c in _IDX_DTYPES)} then the number of dimensions). {_FIX}"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(data)} of {header} bytes). {_FIX}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(
            f"{source}: IDX data {what}: shape {shape} needs {expected} bytes after the header, "
            f"found {found}. {_FIX}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not); raise ValueError naming the file if it is corrupt."""
    return parse_idx(read_maybe_gzip(path), str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in _DTYPE_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of {sorted(_DTYPE_CODES)}")
    code = _DTYPE_CODES[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
