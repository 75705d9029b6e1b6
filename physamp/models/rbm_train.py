"""Moved to :mod:`physamp.models.rbm.pcd`; this name is the same module object, kept for existing imports."""

import sys

from physamp.models.rbm import pcd as _home

sys.modules[__name__] = _home
