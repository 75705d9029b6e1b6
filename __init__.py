"""The root of a physamp repository clone: not the package (that is ``physamp/`` inside it).

Why this file exists: a script saved beside a clone folder named ``physamp/`` has that
folder first on ``sys.path``, so ``import physamp`` used to find the *repository* folder
and import it as an empty namespace package (no code of ours runs for one), failing
later with "module 'physamp' has no attribute 'RBM'". With this file the folder is a
regular package whose only job is to step aside:

- if physamp is installed (``pip install -e .`` included), that installed package is
  imported instead, exactly as if this folder were not there;
- otherwise the import fails at once with an ``ImportError`` that says what happened
  and how to fix it.

Nothing else imports this file; it is not part of the installed package.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _step_aside(name: str, clone: str) -> None:
    """Import the real package ``name`` from anywhere but ``clone``'s parent folder, in our place."""
    parent = os.path.dirname(clone)
    search = [p for p in sys.path if os.path.abspath(p or os.curdir) != parent]
    for finder in sys.meta_path:
        try:
            if finder is importlib.machinery.PathFinder:
                spec = finder.find_spec(name, search)
            elif hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, None)
            else:
                continue
        except (ImportError, ValueError, AttributeError):
            continue
        origin = None if spec is None else spec.origin
        if spec is None or spec.loader is None or origin in (None, "namespace", __file__):
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # the import system returns what sys.modules holds when we finish
        spec.loader.exec_module(module)
        return
    inner = os.path.join(clone, name)
    raise ImportError(
        f"'import {name}' found the folder {clone}, which is a clone of the physamp repository, not the "
        f"package (that is {inner}), because your script or working directory is beside it and physamp "
        f"is not installed. Install it (pip install -e {clone}), or rename the clone folder (e.g. "
        f"{name}-repo), or run from another directory."
    )


if __name__ == "physamp":  # imported as the package (a clone folder named physamp); pytest imports it as
    _step_aside(__name__, os.path.dirname(os.path.abspath(__file__)))  # the folder's own name: nothing to do
