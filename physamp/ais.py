"""AIS for RBMs; the code lives in :mod:`physamp.models.rbm.ais` (the RBM family's home).

``physamp.ais`` stays the documented entry point: ``from physamp.ais import
estimate_log_z, test_nll``.
"""

from physamp.models.rbm.ais import *  # noqa: F401,F403
from physamp.models.rbm.ais import __all__  # noqa: F401
