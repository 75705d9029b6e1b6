"""AIS for RBMs; the code lives in :mod:`physamp.models.rbm.ais` (the RBM family's home).

``physamp.ais`` stays the documented entry point (``from physamp.ais import
estimate_log_z, test_nll``): this name is the same module object, so every name
of it, and any monkeypatching of it, behaves as before the move.
"""

import sys

from physamp.models.rbm import ais as _home

sys.modules[__name__] = _home
