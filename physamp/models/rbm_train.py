"""Moved to :mod:`physamp.models.rbm.pcd`; this name is kept for existing imports."""

from physamp.models.rbm.pcd import *  # noqa: F401,F403
from physamp.models.rbm.pcd import __all__  # noqa: F401
