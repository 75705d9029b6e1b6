"""What a credential looks like: the one definition behind every redaction in physamp.

Two rules, used by run configs and checkpoints (:func:`physamp.training.config.to_jsonable`)
and by the D-Wave backend's text and log redaction (:mod:`physamp.samplers.redact`):

- a value stored under a key named like a credential (``token``, ``api_token``,
  ``api_key``, ``password``, ``secret``, ``credentials``, ...) is never written;
- text shaped like a D-Wave Leap API token (a short letter prefix, a dash and 32 or more
  hex digits) is replaced by ``<redacted>`` wherever it appears.

This module imports nothing else from physamp, so every layer can use it.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "TOKEN_PATTERN", "is_credential_key", "redact_tokens"]

REDACTED = "<redacted>"
#: A Leap API token: a short prefix, a dash and 32 or more hex digits.
TOKEN_PATTERN = re.compile(r"\b[A-Za-z]{2,6}-[0-9A-Fa-f]{32,}\b")
_CREDENTIAL_KEY = re.compile(
    r"(?:^|[_\-. ])(?:token|api[_-]?key|apikey|password|passwd|secret|credentials?)$", re.I
)


def is_credential_key(key) -> bool:
    """Whether a config key names a credential (``"token"``, ``"api_key"``, ``"db.password"``...)."""
    return _CREDENTIAL_KEY.search(str(key)) is not None


def redact_tokens(text: str) -> str:
    """``text`` with every token-shaped substring replaced by ``<redacted>``."""
    return TOKEN_PATTERN.sub(REDACTED, text)
