"""Keeping the D-Wave Leap API token out of everything physamp shows.

The token lives in ``DWAVE_API_TOKEN`` or the dwave config file (``dwave config
create``). physamp never stores it; it only asks whether one is configured
(:func:`token_available`), scrubs it from any text it is about to show
(:func:`redact`: error messages, reports) and from the log records of Ocean's
``dwave.*`` loggers (:func:`install_log_redaction`), which log the client's
configuration, token included, at DEBUG level.

Besides the configured token itself, anything shaped like a Leap token (a short
prefix, a dash and 32 or more hex digits: :data:`_TOKEN_PATTERN`) is redacted,
so a token the process never configured cannot leak either.
"""

from __future__ import annotations

import logging
import os
import re

__all__ = ["token_available", "redact", "install_log_redaction", "REDACTED"]

REDACTED = "<redacted>"
_TOKEN_PATTERN = re.compile(r"\b[A-Za-z]{2,6}-[0-9A-Fa-f]{32,}\b")


def _config_token() -> str | None:
    """The token of the dwave config file, or None (never raises: unreadable means none)."""
    try:
        from dwave.cloud.config import load_config

        return load_config().get("token") or None
    except Exception:  # unreadable config: treated as "no token"
        return None


def token_available() -> bool:
    """Whether a Leap token is set (``DWAVE_API_TOKEN`` or dwave config); never returns it."""
    return bool(os.environ.get("DWAVE_API_TOKEN")) or _config_token() is not None


def redact(text: str) -> str:
    """``text`` with the configured token, and anything shaped like a token, replaced by
    ``<redacted>``."""
    for secret in (os.environ.get("DWAVE_API_TOKEN"), _config_token()):
        if secret:
            text = text.replace(secret, REDACTED)
    return _TOKEN_PATTERN.sub(REDACTED, text)


_redact = redact  # the name physamp.samplers.dwave used

_REDACTING_FACTORY_INSTALLED = False


def install_log_redaction() -> None:
    """Redact API tokens from every log record of the ``dwave`` loggers (idempotent).

    Ocean's cloud client logs its configuration, token included, at DEBUG level.
    A log-record factory (which, unlike a logger filter, also covers child loggers
    and handlers configured later) rewrites the message of any record from a
    ``dwave.*`` logger with the token replaced by ``<redacted>``.
    """
    global _REDACTING_FACTORY_INSTALLED
    if _REDACTING_FACTORY_INSTALLED:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if record.name.startswith("dwave"):
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to the logging module
                return record
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return record

    logging.setLogRecordFactory(factory)
    _REDACTING_FACTORY_INSTALLED = True
