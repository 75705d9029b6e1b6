"""One source for every hyperparameter: a config dataclass, from which the CLI is generated.

A model family describes its run as a dataclass whose fields carry their help
text (and, where needed, their flag and number type) through :func:`option`::

    @dataclass
    class ToyConfig:
        epochs: int = option(10, "passes over the training data", type=positive_int)
        lr: float = option(1e-3, "Adam learning rate", type=positive_float)
        schedule: str = option("cosine", "learning-rate schedule", choices=("cosine", "constant"))

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ToyConfig)        # --epochs, --lr, --schedule, --set KEY=VALUE
    cfg = config_from_args(ToyConfig, parser.parse_args(argv))

The flags, their defaults and their help text all come from the fields: adding a
hyperparameter is one line in the dataclass. ``--set KEY=VALUE`` (repeatable)
reaches every field by its name, including those without a flag; values are
Python literals (``--set sampler_options="{'steps': 5}"``) or bare strings.
Errors name the field and say what was expected.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "option",
    "add_config_arguments",
    "config_from_args",
    "apply_overrides",
    "parse_assignments",
    "number_type",
    "positive_int",
    "positive_float",
    "nonnegative_float",
    "seed_int",
    "SEED_RANGE",
]


#: what an optional field's flag or ``--set`` value may say for None
_NONE_SPELLINGS = ("none", "null", "")


def parse_assignments(pairs: Iterable[str] | None) -> dict[str, Any]:
    """``["steps=100", "child=neal"]`` → ``{"steps": 100, "child": "neal"}`` (Python literals or strings)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"option {pair!r} must look like NAME=VALUE (e.g. steps=100)")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def number_type(cast: type, *, strictly_positive: bool) -> Callable[[str], Any]:
    """An argparse type: a finite ``cast`` number, > 0 or >= 0, with a clear message otherwise."""
    name, article = ("integer", "an") if cast is int else ("number", "a")
    bound = "positive" if strictly_positive else ">= 0"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {article} {name}") from None
        ok = value > 0 if strictly_positive else value >= 0
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a {bound} finite {name}, got {text}")
        return value

    parse.__name__ = f"{bound} {name}"
    parse.__doc__ = f"Parse a {bound} finite {name} from a command-line string (an argparse ``type``)."
    return parse


positive_int = number_type(int, strictly_positive=True)
positive_float = number_type(float, strictly_positive=True)
nonnegative_float = number_type(float, strictly_positive=False)

#: the seeds physamp accepts: any 64-bit signed integer. Negative seeds are fine: every stream's
#: seed is derived from it (physamp.seeding.derive_seed maps any integer into [0, 2^63)), and the
#: few used directly (the test set's binarisation) go to torch, which takes this whole range.
SEED_RANGE = (-(2**63), 2**63 - 1)


def seed_int(text: str) -> int:
    """An argparse type for seeds: an integer in :data:`SEED_RANGE` (negative seeds included)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise argparse.ArgumentTypeError(f"must be an integer from -2^63 to 2^63 - 1 (a seed), got {text}")
    return value


seed_int.__name__ = "integer seed"


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    flags: tuple[str, ...] | None = None,
    type: Callable[[str], Any] | None = None,
    choices: Iterable[Any] | None = None,
    convert: Callable[[Any], Any] | None = None,
    action: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
):
    """A dataclass field that also describes its command-line flag.

    Args:
        default, default_factory: as for :func:`dataclasses.field`.
        help: the flag's help text (the default is appended to it).
        flags: the flag's spellings; default ``--field-name``.
        type: argparse type of one value (default: from the annotation).
        choices: allowed values.
        convert: applied to the parsed value before it reaches the config
            (e.g. ``parse_assignments`` for a repeatable ``-o NAME=VALUE`` flag).
        action: argparse action (e.g. ``"append"``).
        metavar: argparse metavar.
        cli: False keeps the field off the flag list (``--set`` still reaches it).
    """
    meta = {
        "help": help,
        "flags": flags,
        "type": type,
        "choices": None if choices is None else tuple(choices),
        "convert": convert,
        "action": action,
        "metavar": metavar,
        "cli": cli,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; anything else → ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _none_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def inner(text: str):
        if text.strip().lower() in _NONE_SPELLINGS:
            return None
        return parse(text)

    inner.__name__ = getattr(parse, "__name__", "value")
    return inner


def _flag_names(f: dataclasses.Field) -> tuple[str, ...]:
    return f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_cls,
    *,
    exclude: Iterable[str] = (),
    set_flag: bool = True,
) -> None:
    """Add one flag per field of dataclass ``config_cls`` (help, default and type from the
    field), and ``--set KEY=VALUE`` for any field by name.

    Each flag's ``dest`` is the field name, so :func:`config_from_args` reads them back.
    Fields made with ``option(cli=False)``, fields in ``exclude`` and dict/list fields
    without an explicit ``action`` get no flag.
    """
    hints = _hints(config_cls)
    skip = set(exclude)
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if f.name in skip or not meta.get("cli", True):
            continue
        tp, optional = _unwrap_optional(hints.get(f.name, str))
        default = _default_of(f)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        help_text = meta.get("help") or ""
        shown = "none" if default is None else default
        kwargs["help"] = f"{help_text} (default: {shown})".strip() if not meta.get("action") else help_text
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("action"):
            kwargs["action"] = meta["action"]
        elif tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            origin = typing.get_origin(tp) or tp
            if origin in (dict, list, tuple):
                continue  # structured values: --set KEY=VALUE
            parse = meta.get("type") or (tp if tp in (int, float, str) else str)
            kwargs["type"] = _none_or(parse) if optional else parse
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"]) + ([None] if optional else [])
        parser.add_argument(*_flag_names(f), **kwargs)
    if set_flag and not any("--set" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--set",
            dest="config_set",
            action="append",
            metavar="KEY=VALUE",
            default=None,
            help=f"set any {config_cls.__name__} field by name (repeatable), e.g. --set "
            f"{dataclasses.fields(config_cls)[0].name}=...",
        )


def _coerce(name: str, value: Any, tp) -> Any:
    """``value`` as field type ``tp`` (ints for floats allowed), or a ValueError naming ``name``.

    For an optional field the strings ``none`` / ``null`` / ``""`` mean None, as on the flag.
    """
    inner, optional = _unwrap_optional(tp)
    if optional and isinstance(value, str) and value.strip().lower() in _NONE_SPELLINGS:
        value = None
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} cannot be None")
    origin = typing.get_origin(inner) or inner
    if origin is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be True or False, got {value!r}")
    if origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name} must be a number, got {value!r}")
    if origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if origin is str:
        return str(value)
    if origin in (dict, list, tuple) and not isinstance(value, origin):
        raise ValueError(f"{name} takes a {origin.__name__} literal, got {value!r}")
    return value


def apply_overrides(cfg, overrides: dict[str, Any] | Iterable[str]):
    """A copy of dataclass ``cfg`` with ``overrides`` (a dict, or ``KEY=VALUE`` strings) applied."""
    if not isinstance(overrides, dict):
        overrides = parse_assignments(overrides)
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(
            f"unknown {type(cfg).__name__} field(s) {unknown}; the fields are: {', '.join(sorted(names))}"
        )
    hints = _hints(type(cfg))
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    values = {}
    for k, v in overrides.items():
        value = _coerce(k, v, hints.get(k, Any))
        _check_like_the_flag(fields[k], value)
        values[k] = value
    return dataclasses.replace(cfg, **values)


def _check_like_the_flag(f: dataclasses.Field, value: Any) -> None:
    """Hold a ``--set`` value to the flag's own number type and choices (None passes for optional
    fields, which :func:`_coerce` has checked)."""
    if value is None:
        return
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{f.name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    parse = f.metadata.get("type")
    if parse is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parse(repr(value))
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"{f.name} {err}") from None


def config_from_args(config_cls, args: argparse.Namespace, **fixed: Any):
    """The ``config_cls`` instance the flags of :func:`add_config_arguments` describe.

    Flags given on the command line override the field defaults, ``fixed`` keyword
    values override those, and ``--set KEY=VALUE`` is applied last. The result is
    validated when the class has a ``validate()`` method.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            convert = f.metadata.get("convert")
            values[f.name] = convert(value) if convert is not None else value
    values.update(fixed)
    cfg = config_cls(**values)
    sets = getattr(args, "config_set", None)
    if sets:
        cfg = apply_overrides(cfg, sets)
    validate = getattr(cfg, "validate", None)
    return validate() if callable(validate) else cfg
