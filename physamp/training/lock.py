"""Exclusive locks on run directories and sweep cells: one process works on a run at a time.

A lock is an OS-level advisory lock (``fcntl.flock``) on a small file, e.g.
``RUN_DIR/.lock``. While a process holds it, the file says who does (pid, host,
start time, command), so a second process that finds the lock taken can name the
holder. The operating system drops the lock when its holder exits, however it
exits (Ctrl-C, ``kill -9``, a crash), so a lock file left behind by a dead process
never blocks anyone: it is simply taken over. Lock files are never deleted (deleting
one while another process waits on it would let two processes hold "the" lock).

On a system without ``fcntl`` (Windows) the lock is a no-op.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock", "LockHeldError"]


class LockHeldError(RuntimeError):
    """Another process holds the lock; ``holder`` is what it wrote in the lock file (may be empty)."""

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder


def describe_holder(holder: dict[str, Any]) -> str:
    """``"pid 1234 on host node1 (since 2024-01-01 12:00:00: physamp train-rbm ...)"``, or a generic text."""
    if not holder.get("pid"):
        return "another process"
    text = f"pid {holder['pid']} on host {holder.get('host', '?')}"
    details = [d for d in (holder.get("started"), holder.get("command")) if d]
    return text + (f" (since {': '.join(details)})" if details else "")


# path -> [fd, count, pid]: the locks this process holds (a process may take its own lock again, nested);
# the pid tells a forked child (which inherits this dict and the descriptors) that the lock is its parent's
_HELD: dict[str, list[int]] = {}


class FileLock:
    """An exclusive lock on ``path`` (created if missing).

    ``acquire()`` takes it or raises :class:`LockHeldError` naming the holder;
    ``acquire(blocking=True)`` waits for it. ``release()`` (or leaving a ``with`` block)
    gives it back; the OS gives it back when the process ends. The lock is per process:
    code that already holds it (e.g. :func:`~physamp.models.rbm.train_and_evaluate`
    around its :class:`~physamp.training.TrainLoop`) may take it again, nested; another
    process may not.
    """

    def __init__(self, path: str | os.PathLike, what: str | None = None):
        self.path = Path(path)
        self.what = what or str(self.path)
        self._key: str | None = None

    @property
    def held(self) -> bool:
        return self._key is not None

    def holder(self) -> dict[str, Any]:
        """What the current holder wrote in the lock file (``{}`` if nothing readable)."""
        try:
            return dict(json.loads(self.path.read_text() or "{}"))
        except (OSError, ValueError, TypeError):
            return {}

    def acquire(self, *, blocking: bool = False) -> FileLock:
        if self._key is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
            self._key = key
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                holder = self.holder()
                raise LockHeldError(
                    f"{self.what} is in use by {describe_holder(holder)}; wait for that process to finish "
                    f"or stop it, then run again (the lock is {self.path})",
                    holder,
                ) from None
            except BaseException:
                os.close(fd)
                raise
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:300] if sys.argv else "",
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _HELD[key] = [fd, 1, os.getpid()]
        self._key = key
        return self

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None or key not in _HELD:
            return
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[key]
        if entry[2] != os.getpid():  # a forked child: the lock is its parent's; close the copy only
            os.close(entry[0])
            return
        try:
            os.ftruncate(entry[0], 0)  # nobody holds it now; the file itself stays (module docstring)
        except OSError:
            pass
        if fcntl is not None:  # unlock first: a forked child (a DataLoader worker) shares the descriptor
            try:
                fcntl.flock(entry[0], fcntl.LOCK_UN)
            except OSError:
                pass
        os.close(entry[0])

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a lock object dropped without release() gives its hold back
        try:
            self.release()
        except Exception:
            pass
