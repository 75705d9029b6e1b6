"""UCI Connect-4 as 126-bit binary vectors (Larochelle et al.; Larochelle & Murray, NADE 2011).

Each of the 67,557 rows of ``connect-4.data`` lists the 42 cells a1..a6, b1..b6, ..., g1..g6
as ``x`` (first player), ``o`` (second player) or ``b`` (blank), then the outcome for ``x``
(``win``, ``loss``, ``draw``). Each cell becomes three bits, one-hot in the order (x, o, b), so
every vector has 126 bits of which exactly 42 are 1.

Split (our choice, as no official split exists): a permutation of the rows drawn with
``numpy.random.default_rng(0)`` gives 16,000 train, 4,000 valid and 47,557 test positions, the
sizes of Larochelle & Murray (2011). Their own permutation is not published, so figures on this
split are comparable among themselves, not digit for digit with theirs.

The UCI file is ``connect-4.data.Z`` (Unix ``compress``, LZW), decoded here in pure Python; a
plain ``connect-4.data`` (or ``.data.gz``) in ``root`` works too. UCI publishes no checksum:
a download is accepted when it decodes and parses to exactly 67,557 well-formed rows.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from physamp.data.binary import BinaryDataset
from physamp.data.download import cache_dir, download_file
from physamp.data.idx import read_maybe_gzip

__all__ = ["load_connect4", "parse_connect4", "unlzw", "CONNECT4_URL"]

CONNECT4_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/connect-4/connect-4.data.Z"
N_ROWS = 67_557
SPLIT_SIZES = (16_000, 4_000, 47_557)
SPLIT_SEED = 0
CELL_CODES = {"x": 0, "o": 1, "b": 2}
OUTCOMES = {"win": 0, "loss": 1, "draw": 2}


def unlzw(data: bytes, source: str = "<bytes>") -> bytes:
    """Decode a Unix ``compress`` (.Z, LZW) stream, as gzip's unlzw.c does.

    Codes are packed LSB first, 9 bits wide at the start and one bit wider each time the table
    outgrows the width (up to the header's maximum). At each width change and after a CLEAR
    code (256, block mode) the reader skips to the end of the current group of 8 codes.
    """
    if len(data) < 3 or data[:2] != b"\x1f\x9d":
        raise ValueError(f"{source}: not a .Z (compress) file: bad magic number {data[:2].hex()}")
    flags = data[2]
    maxbits, block_mode = flags & 0x1F, bool(flags & 0x80)
    if not 9 <= maxbits <= 16 or flags & 0x60:
        raise ValueError(f"{source}: unsupported .Z header byte {flags:#04x}")
    maxmaxcode = 1 << maxbits
    stream = data[3:] + b"\0\0\0"  # padded so that a 3-byte read near the end stays in range
    total_bits = 8 * (len(data) - 3)
    prefix = [0] * maxmaxcode
    suffix = list(range(256)) + [0] * (maxmaxcode - 256)
    n_bits, maxcode = 9, (1 << 9) - 1
    free_ent = 257 if block_mode else 256
    pos = run_start = 0  # bit positions in the code stream; run_start: where the current width began
    oldcode, finchar = -1, 0
    out = bytearray()

    def align(p: int) -> int:  # round up to a whole group of 8 codes at the current width
        group = 8 * n_bits
        return run_start + -(-(p - run_start) // group) * group

    while pos + n_bits <= total_bits:
        if free_ent > maxcode:
            pos = run_start = align(pos)
            n_bits += 1
            maxcode = maxmaxcode if n_bits == maxbits else (1 << n_bits) - 1
            continue
        byte = pos >> 3
        code = (int.from_bytes(stream[byte : byte + 3], "little") >> (pos & 7)) & ((1 << n_bits) - 1)
        pos += n_bits
        if oldcode == -1:
            if code >= 256:
                raise ValueError(f"{source}: corrupt .Z data (first code {code})")
            oldcode = finchar = code
            out.append(code)
            continue
        if code == 256 and block_mode:
            free_ent = 256
            pos = run_start = align(pos)
            n_bits, maxcode = 9, (1 << 9) - 1
            continue
        incode = code
        stack = bytearray()
        if code >= free_ent:  # the KwKwK case
            if code > free_ent:
                raise ValueError(
                    f"{source}: corrupt .Z data (code {code} > next free {free_ent}); "
                    "delete the file and download it again"
                )
            stack.append(finchar)
            code = oldcode
        while code >= 256:
            stack.append(suffix[code])
            code = prefix[code]
        finchar = suffix[code]
        stack.append(finchar)
        stack.reverse()
        out += stack
        if free_ent < maxmaxcode:
            prefix[free_ent], suffix[free_ent] = oldcode, finchar
            free_ent += 1
        oldcode = incode
    return bytes(out)


def parse_connect4(text: str, source: str = "<text>") -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``connect-4.data`` -> uint8 bits (N, 126) one-hot (x, o, b) per cell, int64 outcomes (N,)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cells = np.empty((len(lines), 42), dtype=np.int64)
    outcomes = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        fields = line.split(",")
        try:
            if len(fields) != 43:
                raise KeyError(f"{len(fields)} fields")
            cells[i] = [CELL_CODES[f] for f in fields[:42]]
            outcomes[i] = OUTCOMES[fields[42]]
        except KeyError as exc:
            raise ValueError(
                f"{source}, line {i + 1}: expected 42 cells in {{x, o, b}} then win/loss/draw, "
                f"got {line[:60]!r} ({exc})"
            ) from None
    bits = np.zeros((len(lines), 42, 3), dtype=np.uint8)
    np.put_along_axis(bits, cells[:, :, None], 1, axis=2)
    return bits.reshape(len(lines), 126), outcomes


def _read_connect4_file(path: Path) -> bytes:
    raw = path.read_bytes()
    return unlzw(raw, str(path)) if raw[:2] == b"\x1f\x9d" else read_maybe_gzip(path)


def _find_connect4(folder: Path) -> Path | None:
    for name in ("connect-4.data", "connect-4.data.gz", "connect-4.data.Z"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_connect4(root: str | os.PathLike | None = None, *, download: bool = False) -> BinaryDataset:
    """Connect-4, 126 bits per position, split 16,000 / 4,000 / 47,557 (train / valid / test).

    ``root``: a folder with ``connect-4.data`` (or ``.data.gz``, ``.data.Z``); without it,
    ``cache_dir()/connect4``, where ``download=True`` fetches the UCI ``.Z`` file and stores
    the decoded ``connect-4.data`` beside it.
    """
    folder = Path(root).expanduser() if root is not None else cache_dir() / "connect4"
    path = _find_connect4(folder)
    if path is None and download and root is None:
        path = download_file([CONNECT4_URL], folder / "connect-4.data.Z", md5=None)
    if path is None:
        hint = "" if root is not None else ", or call load_dataset('connect4', download=True)"
        raise FileNotFoundError(
            f"connect-4.data (or connect-4.data.Z) not found in {folder}. Download {CONNECT4_URL} "
            f"and put it there{hint}."
        )
    text = _read_connect4_file(path)
    try:
        bits, outcomes = parse_connect4(text.decode("ascii"), str(path))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a Connect-4 text file ({exc}); delete it and download it again"
        ) from exc
    if len(bits) != N_ROWS:
        raise ValueError(f"{path}: {len(bits)} positions, expected {N_ROWS}; delete it and download it again")
    if root is None and path.suffix == ".Z" and not (folder / "connect-4.data").exists():
        # cache the decoded text beside the download (never inside a user's root folder)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.replace(tmp, folder / "connect-4.data")
    order = np.random.default_rng(SPLIT_SEED).permutation(N_ROWS)
    n_tr, n_va, _ = SPLIT_SIZES
    parts = order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va :]
    x = torch.from_numpy(bits.astype(np.float32))
    y = torch.from_numpy(outcomes)
    return BinaryDataset(
        train=x[parts[0]],
        valid=x[parts[1]],
        test=x[parts[2]],
        train_labels=y[parts[0]],
        valid_labels=y[parts[1]],
        test_labels=y[parts[2]],
        name="connect4",
        protocol=(
            "UCI Connect-4, 126 bits (one-hot x/o/b per cell), split 16,000 / 4,000 / 47,557 by "
            f"numpy default_rng({SPLIT_SEED}) permutation; data already binary (no binarisation)"
        ),
        image_shape=None,
    )
