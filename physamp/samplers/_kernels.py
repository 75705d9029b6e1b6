"""Small C kernels compiled on first use, cached, and loaded with ctypes (one mechanism for all).

A kernel is C source held in a Python string. :class:`CompiledKernel` compiles it with the
system C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``) into ``$PHYSAMP_KERNEL_CACHE``
(default ``~/.cache/physamp/kernels``), under a name keyed by the source, the compiler binary
and the CPU (``-march=native`` code is only reused on the CPU it was built for), and loads it.
A cache that cannot be written gives a private ``mkdtemp`` directory; a cached file that does
not load is rebuilt once. Whatever goes wrong, ``lib()`` returns None with the reason in
``reason``, and the caller runs its torch path. ``PHYSAMP_COMPILED_DRAW=0`` turns every kernel
off.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CompiledKernel", "cache_dir"]

#: The environment switch that turns the compiled kernels off (the torch paths then run).
OFF_SWITCH = "PHYSAMP_COMPILED_DRAW"


def cache_dir() -> Path:
    env = os.environ.get("PHYSAMP_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "physamp" / "kernels"


def _cpu_identity() -> str:
    """What -march=native compiles for: the CPU's model and flags (a cache on a shared disk stays safe)."""
    text = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags", "Features"))]
        text += "\n".join(sorted(set(lines)))
    except OSError:
        pass
    return text


class CompiledKernel:
    """One C kernel: ``source`` compiled to ``<stem>-<digest>.so`` and loaded by ``loader(path)``.

    ``loader`` declares the ctypes signatures and may check the library (raising if it is wrong);
    ``flags`` are added to ``-O3 <variant> -fPIC -shared``, with the ``variants`` tried in order
    until one compiles (default ``-march=native``, then nothing); ``what`` names the kernel in the
    warning a failed build gives.
    """

    def __init__(
        self,
        stem: str,
        source: str,
        loader: Callable[[Path], Any],
        *,
        flags: Sequence[str] = ("-fno-trapping-math",),
        variants: Sequence[Sequence[str]] = (("-march=native",), ()),
        what: str = "kernel",
    ):
        self.stem, self.source, self.loader = stem, source, loader
        self.flags, self.what = tuple(flags), what
        self.variants = tuple(tuple(v) for v in variants)
        self._lib: Any = None
        self.reason = "not tried yet"
        self._lock = threading.Lock()

    def build(self, cc: str, out: Path) -> None:
        """Compile into ``out`` (atomically: a temporary file, then a rename)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            src = Path(tmp) / f"{self.stem}.c"
            src.write_text(self.source)
            so = Path(tmp) / out.name
            errors = []
            for variant in self.variants:  # the first that compiles
                cmd = [cc, "-O3", *variant, *self.flags, "-fPIC", "-shared", "-o", str(so), str(src), "-lm"]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                if r.returncode == 0:
                    os.replace(so, out)
                    return
                errors.append(r.stderr.strip().splitlines()[-1:] or [f"exit {r.returncode}"])
            raise RuntimeError(f"{cc} failed: {errors}")

    def lib(self, describe: Callable[[Any], str] | None = None):
        """The loaded library, or None (and the reason in ``self.reason``); built at most once."""
        if self._lib is not None or self.reason != "not tried yet":
            return self._lib
        with self._lock:
            if self._lib is not None or self.reason != "not tried yet":
                return self._lib
            if os.environ.get(OFF_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
                self.reason = f"turned off by {OFF_SWITCH}"
                return None
            if sys.byteorder != "little":
                self.reason = "needs a little-endian CPU"
                return None
            cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
            if not cc:
                self.reason = "no C compiler (cc, gcc, clang or $CC) on PATH"
                return None
            try:
                exe = shutil.which(cc) or cc
                st = os.stat(os.path.realpath(exe))  # the compiler binary itself: a new one gives a new key
                compiler = f"{os.path.realpath(exe)}:{st.st_size}:{st.st_mtime_ns}"
                parts = [self.source, compiler, _cpu_identity(), platform.machine(), *self.flags]
                key = "\0".join(parts + [" ".join(v) for v in self.variants])
                path = cache_dir() / f"{self.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
                if not path.exists():
                    try:
                        self.build(cc, path)
                    except OSError:  # the cache is not writable: a private directory of this process
                        # (mkdtemp: created by us, mode 0700; never a predictable shared path whose file
                        # another user could have planted)
                        path = Path(tempfile.mkdtemp(prefix="physamp-kernels-")) / path.name
                        self.build(cc, path)
                try:
                    self._lib = self.loader(path)
                except Exception:  # a stale or foreign file under our name: build it again, once
                    path.unlink(missing_ok=True)
                    self.build(cc, path)
                    self._lib = self.loader(path)
                how = f" ({describe(self._lib)})" if describe else ""
                self.reason = f"compiled{how} at {path}"
            except Exception as e:  # whatever went wrong, the torch path computes the same thing
                self._lib = None
                self.reason = f"could not build or load the kernel: {e}"
                warnings.warn(
                    f"physamp: the compiled {self.what} is not available ({self.reason}); using the torch "
                    "path (the same results, slower)",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return self._lib
