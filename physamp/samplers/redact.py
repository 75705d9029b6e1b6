"""Keeping the D-Wave Leap API token out of everything physamp shows.

A token reaches physamp in one of three ways: ``DWAVE_API_TOKEN``, the dwave
config file (``dwave config create``), or an option
(``make_sampler("dwave", token=...)``, ``-o token=...``). physamp never writes or
shows it:

- :class:`Secret` holds an option token; its ``repr`` and ``str`` are
  ``<redacted>``, so no repr, config or report built from the backend holds it.
- :func:`redact` scrubs every known token (the environment's, the config file's
  and every option token of this process, :func:`register_secret`) and anything
  shaped like a Leap token (``_TOKEN_PATTERN``: a short prefix, a dash and 32
  or more hex digits) from text about to be shown: error messages, reports.
- :func:`install_log_redaction` rewrites every log record before any handler
  sees it. Ocean's cloud client logs its configuration, token included, at DEBUG
  and TRACE level (``DWAVE_LOG_LEVEL=trace``); the hook is installed when
  :mod:`physamp.samplers.dwave` is imported, before anything of Ocean runs.

Reading the config file must not log (Ocean's ``load_config`` does, and the log
hook would then read the config again: an endless recursion), so
``_config_token()`` reads the file with Ocean's non-logging loader, caches the
result by the file's path and modification time, and is guarded against
re-entry from the log hook.
"""

from __future__ import annotations

import logging
import os
import threading

from physamp.credentials import REDACTED, TOKEN_PATTERN, redact_tokens

__all__ = [
    "REDACTED",
    "Secret",
    "install_log_redaction",
    "redact",
    "register_secret",
    "token_available",
]

_TOKEN_PATTERN = TOKEN_PATTERN  # the one definition: physamp.credentials
_MIN_SECRET_LENGTH = 4  # shorter "tokens" are not scrubbed from text (they would garble it)

_SECRETS: set[str] = set()  # option tokens seen by this process (register_secret)
_GUARD = threading.local()  # re-entrancy guard of the config read
_CONFIG_CACHE: dict[tuple, str | None] = {}
_LAST_CONFIG_TOKEN: list[str | None] = [None]  # what a re-entrant call (from the log hook) sees


class Secret:
    """A value that is never shown: ``repr`` / ``str`` give ``<redacted>``; :meth:`reveal` gives
    the value to the one call that needs it (building ``DWaveSampler``).

    Creating one registers the value with :func:`register_secret`, so :func:`redact` scrubs it
    from any text, log record or error of this process.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"a token must be a non-empty string, got a {type(value).__name__}; pass the Leap API "
                "token as text (token='DEV-...') or set DWAVE_API_TOKEN"
            )
        if value.strip() == REDACTED:
            raise ValueError(
                f"the token is {REDACTED!r}: it was read back from a stored config or checkpoint, where "
                "physamp never writes the real token. Pass the token again (token=..., -o token=...) "
                "or set DWAVE_API_TOKEN"
            )
        self._value = value.strip()
        register_secret(self._value)

    def reveal(self) -> str:
        """The secret value (do not print it)."""
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self):  # worker processes get the value and register it there too
        return (Secret, (self._value,))


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from everything :func:`redact` and the log hook see from now on."""
    if isinstance(value, str) and len(value.strip()) >= _MIN_SECRET_LENGTH:
        _SECRETS.add(value.strip())


def _config_key() -> tuple:
    """What the config token depends on: the file(s) to read, their mtimes, the profile."""
    config_file = os.environ.get("DWAVE_CONFIG_FILE") or None
    profile = os.environ.get("DWAVE_PROFILE") or None
    if config_file is not None:
        paths = [config_file]
    else:
        from dwave.cloud.config.loaders import get_configfile_paths

        paths = list(get_configfile_paths(only_existing=False))
    stamps: list[tuple[str, int | None, int | None]] = []
    for p in paths:
        try:
            st = os.stat(p)
            stamps.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((p, None, None))
    return (config_file, profile, tuple(stamps))


def _config_token() -> str | None:
    """The token of the dwave config file, or None; never raises (unreadable means none).

    Reads the file without logging (Ocean's ``load_config`` logs the config, token
    included), caches it by path and modification time, and returns the cached value
    (or None) when called again from inside the read (the log hook).
    """
    if getattr(_GUARD, "active", False):
        return _LAST_CONFIG_TOKEN[0]
    _GUARD.active = True
    try:
        install_log_redaction()  # before anything of Ocean is imported or runs
        try:
            key = _config_key()
        except Exception:  # no dwave-cloud-client: no config file either
            return None
        if key not in _CONFIG_CACHE:
            try:
                from dwave.cloud.config.loaders import load_profile_from_files

                config_file, profile, _ = key
                section = load_profile_from_files([config_file] if config_file else None, profile)
                token = section.get("token") or None
            except Exception:  # unreadable or absent config: treated as "no token"
                token = None
            _CONFIG_CACHE.clear()
            _CONFIG_CACHE[key] = token
            register_secret(token)
        _LAST_CONFIG_TOKEN[0] = _CONFIG_CACHE[key]
        return _CONFIG_CACHE[key]
    finally:
        _GUARD.active = False


def token_available() -> bool:
    """Whether a Leap token is set (``DWAVE_API_TOKEN`` or dwave config); never returns it."""
    return bool(os.environ.get("DWAVE_API_TOKEN")) or _config_token() is not None


def redact(text) -> str:
    """``text`` (made a ``str``) with every known token, and anything shaped like a token,
    replaced by ``<redacted>``."""
    text = str(text)
    known = {os.environ.get("DWAVE_API_TOKEN"), _config_token(), *_SECRETS}
    for secret in sorted((s.strip() for s in known if s and s.strip()), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return redact_tokens(text)


_redact = redact  # the name physamp.samplers.dwave used

_REDACTING_FACTORY_INSTALLED = False
_INSTALL_LOCK = threading.Lock()


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to the logging module
        return record
    clean = redact(message)
    # Ocean logs dicts it mutates afterwards (its config gains the token after being logged):
    # a handler that formats later (MemoryHandler, ...) would show the token, so Ocean's
    # records are frozen now as their redacted text; others are rewritten only when needed
    if clean != message or record.name.startswith("dwave"):
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact(text)
        if clean != text:  # formatters use exc_text when it is set: the traceback is shown redacted
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def install_log_redaction() -> None:
    """Redact API tokens from every log record of every logger (idempotent).

    A log-record factory (which, unlike a logger filter, also covers child loggers and
    handlers configured later) rewrites the message of any record holding a known token
    or anything token-shaped, before any handler formats it; tracebacks attached to the
    record are redacted too. Records of Ocean's ``dwave.*`` loggers are always frozen as
    their (redacted) text, as Ocean mutates the objects it logged. Records written while
    the hook reads the config file are redacted with what is known at that moment.
    """
    global _REDACTING_FACTORY_INSTALLED
    if _REDACTING_FACTORY_INSTALLED:
        return
    with _INSTALL_LOCK:
        if _REDACTING_FACTORY_INSTALLED:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            return _redact_record(previous(*args, **kwargs))

        factory.physamp_redaction = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
        _REDACTING_FACTORY_INSTALLED = True
