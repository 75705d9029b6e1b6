"""Metrics logging: CSV or JSON lines, optionally mirrored to TensorBoard."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "read_metrics"]


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Append ``{"step": s, **metrics}`` records to ``path`` (``.csv`` or ``.jsonl``).

    On resume, records with ``step`` beyond the resumed step are dropped first
    (``truncate_after``), so an interrupted and resumed run logs exactly what an
    uninterrupted one does. CSV columns are those of the first record; a record with
    a new key adds a column (the file is rewritten, the earlier rows left empty there).
    """

    def __init__(self, path: str | os.PathLike, *, tensorboard: bool | str = False):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise ValueError(f"metrics file must end in .csv or .jsonl, got {self.path.name!r}")
        self.format = suffix[1:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        if self.format == "csv" and self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as f:
                self._columns = next(csv.reader(f), None)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception as err:  # tensorboard is optional
                raise ValueError(f"TensorBoard logging needs the tensorboard package ({err})") from None
            logdir = tensorboard if isinstance(tensorboard, str) else str(self.path.parent / "tensorboard")
            self._tb = SummaryWriter(logdir)

    def truncate_after(self, step: int) -> None:
        """Drop records whose step is greater than ``step`` (used when resuming)."""
        if not self.path.exists():
            return
        rows = read_metrics(self.path)  # drops a last record cut short by a crash
        keep = [r for r in rows if r["step"] <= step]
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        header = 1 if self.format == "csv" else 0
        if len(keep) == len(lines) - header and (not lines or lines[-1].endswith("\n")):
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        cols = self._columns
        with open(tmp, "w", newline="") as f:
            if self.format == "csv":
                # cols is None only for an empty CSV file (then this raises, as it always has)
                writer = csv.DictWriter(f, fieldnames=cols)  # type: ignore[arg-type]
                writer.writeheader()
                writer.writerows(keep)
            else:
                for r in keep:
                    f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.path)

    def log(self, step: int, **metrics: Any) -> dict:
        record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        if self.format == "csv":
            new = not self.path.exists() or self.path.stat().st_size == 0
            if self._columns is None:
                self._columns = list(record)
            extra = [k for k in record if k not in self._columns]
            if extra:  # a metric seen for the first time (e.g. a style absent from the first window)
                self._add_columns(extra)
                new = False
            with open(self.path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self._columns)
                if new:
                    writer.writeheader()
                writer.writerow(record)
        else:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)
        return record

    def _add_columns(self, extra: list[str]) -> None:
        """Rewrite the CSV file with ``extra`` columns appended (empty in the earlier rows), atomically."""
        rows = read_metrics(self.path) if self.path.exists() and self.path.stat().st_size else []
        assert self._columns is not None  # log() sets the columns before it adds any
        self._columns = [*self._columns, *extra]
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _is_step(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Records of a metrics file (CSV values come back as strings or floats).

    Every record is checked to be ``{"step": N, ...}`` with a non-negative integer ``N``; a file
    that is not is a ``ValueError`` naming the file and the line. A last JSON line cut short
    (a crash mid-write) is dropped.
    """
    path = Path(path)
    fix = "fix or remove the file (a rerun then logs from its checkpoint's step on)"
    if path.suffix.lower() == ".jsonl":
        records = []
        with open(path) as f:
            lines = [(i, line) for i, line in enumerate(f, 1) if line.strip()]
        for j, (i, line) in enumerate(lines):
            try:
                record = json.loads(line)
            except ValueError:
                if j == len(lines) - 1:  # a record cut short by a crash mid-write
                    break
                raise ValueError(f"{path}: line {i} is not a JSON record; {fix}") from None
            if not isinstance(record, dict) or not _is_step(record.get("step")):
                shown = line.strip()[:60]
                raise ValueError(
                    f'{path}: line {i} is not a metrics record {{"step": N, ...}} ({shown}); {fix}'
                )
            records.append(record)
        return records
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        if rows and "step" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no 'step' column (columns: {reader.fieldnames}); {fix}")
    for i, r in enumerate(rows, 2):
        for k, v in r.items():
            try:
                r[k] = float(v) if k != "step" else int(v)
            except (TypeError, ValueError):
                pass
        if not _is_step(r.get("step")):
            raise ValueError(
                f"{path}: line {i} has step {r.get('step')!r}, not a non-negative integer; {fix}"
            )
    return rows
