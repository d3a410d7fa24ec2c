"""Typed experiment configs: parse ``key=value`` settings, build configs, canonical form and run ids.

A config is a frozen dataclass whose fields all have defaults. Field types understood here:
``int``, ``float``, ``str``, ``bool``, ``Optional[...]`` of those, and ``tuple[X, ...]`` /
``list[X]`` of numbers or strings (written as comma lists on the command line: ``sigma=10,5,3``).

The same coercion serves the CLI (strings) and sweep specs (TOML values), so a setting means the
same thing wherever it is written. Rules every setting follows, wherever it is written:

- a float must be finite (``nan``/``inf`` are refused, naming the setting), unless the field's
  default is itself non-finite;
- a list must not be empty, unless the field's default is empty;
- a single value given for a list field is a one-element list (``seeds = 3`` is ``seeds = [3]``);
- seeds: a config that has a list field ``seeds`` (``init_seeds``, ...) but no ``seed``
  (``init_seed``) also takes ``seed = N``, meaning ``seeds = [N]``: one seed per run, the natural
  axis of a sweep (``seed = { range = [0, 10] }`` in a sweep's ``[grid]``).

Ranges and combinations (``steps >= 1``, ``0 < alpha < 1``, ``len(sigma) == rank``) are the config's
own: its ``__post_init__`` calls :func:`check_limits` and :func:`require`, which raise
:class:`ConfigError` naming the setting and what it expects. :func:`build_config` passes that message
on unchanged, so ``trajcore run --set`` and every grid point of ``trajcore sweep`` (validated before
anything is computed) are refused with the same one line, and so is the Python API.

The field ``n_threads``, when a config has it, is an execution
setting, not part of the experiment: results are bitwise identical for any thread count, so it is
left out of the canonical config and of the run id.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .._json import canonical_json, json_ready

__all__ = [
    "ConfigError",
    "EXECUTION_FIELDS",
    "field_types",
    "type_name",
    "parse_value",
    "seed_alias",
    "coerce_value",
    "parse_assignments",
    "read_settings_file",
    "build_config",
    "config_dict",
    "canonical_json",
    "run_id",
    "Limit",
    "POSITIVE",
    "at_least",
    "above",
    "between",
    "check_limits",
    "require",
    "shown",
]

#: Fields that choose how a run executes, not what it computes (excluded from run ids).
EXECUTION_FIELDS = frozenset({"n_threads"})

# ``Optional[int]`` has origin typing.Union; ``int | None`` (Python >= 3.10) has types.UnionType.
_UNION_ORIGINS: tuple[Any, ...] = (Union, getattr(types, "UnionType", Union))
_NONE_WORDS = frozenset({"none", "null"})
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


class ConfigError(ValueError):
    """A setting that does not fit the experiment's config (unknown key or mistyped value)."""


@dataclasses.dataclass(frozen=True)
class Limit:
    """The range a number setting (or each value of a list setting) must lie in; ``None``: unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, name: str) -> str:
        """``"steps >= 1"``, ``"0 < alpha < 1"``, ``"each of sigma > 0"``: the range as it reads in a message."""
        if self.high is None:
            if self.low is None:
                return f"{name} finite"
            return f"{name} {'>' if self.low_open else '>='} {_number(self.low)}"
        low = "" if self.low is None else f"{_number(self.low)} {'<' if self.low_open else '<='} "
        return f"{low}{name} {'<' if self.high_open else '<='} {_number(self.high)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def at_least(low: float) -> Limit:
    """``value >= low``."""
    return Limit(low=low)


def above(low: float) -> Limit:
    """``value > low``."""
    return Limit(low=low, low_open=True)


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Limit:
    """``low <= value <= high`` (``<`` at an open end)."""
    return Limit(low, high, low_open, high_open)


#: positive, and far enough from underflow and overflow that the value's square (a loss's scale) and
#: its products with others of its kind are finite and non-zero: step sizes, targets, kicks
POSITIVE = between(1e-100, 1e100)


def shown(value: Any) -> str:
    """A setting's value as it is written on the command line (lists as comma lists)."""
    if isinstance(value, (tuple, list)):
        return ",".join(shown(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def require(config: Any, name: str, ok: Any, expected: str) -> None:
    """``ConfigError`` "setting NAME=VALUE: expected EXPECTED" unless ``ok``: for a config's
    ``__post_init__``, for rules that tie settings together (``len(sigma) == rank``)."""
    if not ok:
        raise ConfigError(f"setting {name}={shown(getattr(config, name))}: expected {expected}")


def check_limits(config: Any, **limits: Limit) -> None:
    """``ConfigError`` naming the first setting (in the order given) outside its :class:`Limit`; a
    list setting must have every value inside. ``None`` values (optional settings) are not checked."""
    for name, limit in limits.items():
        value = getattr(config, name)
        if value is None:
            continue
        many = isinstance(value, (tuple, list))
        bad = [v for v in (value if many else [value]) if not limit.holds(v)]
        if bad:
            got = f", got {shown(bad[0])}" if many and len(value) > 1 else ""
            require(config, name, False, limit.describe(f"each of {name}" if many else name) + got)


def field_types(config_type: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass, in declaration order."""
    return dict(_resolved_field_types(config_type))


@functools.cache
def _resolved_field_types(config_type: type) -> tuple[tuple[str, Any], ...]:
    # Resolving the annotations evaluates their strings: once per class, not once per config (a
    # sweep builds thousands of configs before it submits any, all on the client).
    hints = typing.get_type_hints(config_type)
    return tuple((f.name, hints.get(f.name, Any)) for f in dataclasses.fields(config_type))


def _split_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in _UNION_ORIGINS:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) != len(typing.get_args(tp))
    return tp, False


def _sequence_item(tp: Any) -> Any:
    """The element type of ``tuple[X, ...]``/``list[X]``/``tuple[X, Y]`` (``Any`` if mixed), else None."""
    origin = typing.get_origin(tp)
    if origin not in (tuple, list) and tp not in (tuple, list):
        return None
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if not args:
        return Any
    return args[0] if all(a == args[0] for a in args) else Any


def type_name(tp: Any) -> str:
    """How a field type reads in messages: ``int``, ``float or none``, ``comma list of float``."""
    inner, optional = _split_optional(tp)
    item = _sequence_item(inner)
    if item is not None:
        text = "comma list" if item is Any else f"comma list of {type_name(item)}"
    else:
        text = getattr(inner, "__name__", str(inner))
    return f"{text} or none" if optional else text


def _scalar_from_text(tp: Any, text: str) -> Any:
    word = text.strip()
    if tp is bool:
        if word.lower() in _TRUE_WORDS:
            return True
        if word.lower() in _FALSE_WORDS:
            return False
        raise ValueError
    if tp is int:
        try:
            return int(word, 0) if word.lower().startswith(("0x", "0b", "0o")) else int(word)
        except ValueError:
            value = float(word)  # accept 1e6 when it is an integer
            if not value.is_integer():
                raise
            return int(value)
    if tp is float:
        return float(word)
    if tp is str or tp is Any:
        return text
    raise ValueError


def parse_value(tp: Any, text: str) -> Any:
    """Parse the command-line text of one setting by its field type (``ValueError`` if it does not fit)."""
    inner, optional = _split_optional(tp)
    if optional and text.strip().lower() in _NONE_WORDS:
        return None
    item = _sequence_item(inner)
    if item is not None:
        parts = [p for p in text.split(",") if p.strip()] if text.strip() else []
        values = [_scalar_from_text(item, p) for p in parts]
        return list(values) if (typing.get_origin(inner) or inner) is list else tuple(values)
    return _scalar_from_text(inner, text)


def _scalar_from_value(tp: Any, value: Any) -> Any:
    if isinstance(value, str) and tp is not str:
        return _scalar_from_text(tp, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        return float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    if tp is Any:
        return value
    raise ValueError


def coerce_value(tp: Any, value: Any) -> Any:
    """Coerce a TOML/Python value (or command-line text) to a field type (``ValueError`` if not)."""
    inner, optional = _split_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError
    if isinstance(value, str) and (inner is not str):
        return parse_value(tp, value)
    item = _sequence_item(inner)
    if item is not None:
        if isinstance(value, dict):
            raise ValueError
        # a single value for a list field is a one-element list (``seeds = 3``)
        items = value if isinstance(value, (list, tuple)) else [value]
        values = [_scalar_from_value(item, v) for v in items]
        return list(values) if (typing.get_origin(inner) or inner) is list else tuple(values)
    return _scalar_from_value(inner, value)


def seed_alias(config_type: type, key: str) -> str | None:
    """The list field ``key + "s"`` that the singular ``key`` stands for (``seed`` -> ``seeds``), or None.

    Only for names ending in ``seed``, and only when the config has no field ``key`` itself.
    """
    types = field_types(config_type)
    if key in types or not key.endswith("seed"):
        return None
    plural = key + "s"
    return plural if plural in types and _sequence_item(_split_optional(types[plural])[0]) is not None else None


def _resolve_aliases(config_type: type, values: Mapping[str, Any], context: str) -> dict[str, Any]:
    """``values`` with singular seed keys renamed to their list field (see :func:`seed_alias`)."""
    resolved: dict[str, Any] = {}
    for key, value in values.items():
        plural = seed_alias(config_type, key)
        if plural is None:
            name = key
        else:
            if plural in values:
                raise ConfigError(
                    f"settings {key} and {plural} for {context}: give one of them ({key}=N means {plural}=N)"
                )
            name = plural
        resolved[name] = value
    return resolved


def _check_keys(config_type: type, keys: Iterable[str], context: str) -> dict[str, Any]:
    types = field_types(config_type)
    for key in keys:
        if key not in types and seed_alias(config_type, key) is None:
            valid = ", ".join(f"{k} ({type_name(t)})" for k, t in types.items())
            raise ConfigError(f"unknown key {key!r} for {context}; valid keys: {valid}")
    return types


def _check_value(config_type: type, key: str, name: str, value: Any, written: Any) -> None:
    """The rules beyond the type (module docstring): finite floats, non-empty lists. ``key`` is the
    setting as written, ``name`` its field."""
    tp = field_types(config_type)[name]
    default = _field_default(config_type, name)
    inner, _ = _split_optional(tp)
    item = _sequence_item(inner)
    if item is not None and isinstance(value, (list, tuple)):
        if not value and not (isinstance(default, (list, tuple)) and not default):
            raise ConfigError(f"setting {key}={written!r}: expected a non-empty {type_name(tp)}")
        items: list[Any] = list(value)
        defaults = list(default) if isinstance(default, (list, tuple)) else []
    else:
        items, defaults = [value], [default]
    finite_default = all(not isinstance(d, float) or math.isfinite(d) for d in defaults)
    for v in items:
        if isinstance(v, float) and not math.isfinite(v) and finite_default:
            raise ConfigError(f"setting {key}={written!r}: expected a finite number, got {v!r}")


def _field_default(config_type: type, key: str) -> Any:
    for f in dataclasses.fields(config_type):
        if f.name == key:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return None


def parse_assignments(
    config_type: type, assignments: Iterable[str], context: str = "this experiment"
) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` into typed values for ``config_type``.

    Raises
    ------
    ConfigError
        For a malformed assignment, an unknown key (the message lists the valid keys with their
        types) or a value that does not fit its field (the message names the key and the type).
    """
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"setting {assignment!r}: expected key=value")
        types = _check_keys(config_type, [key], context)
        name = seed_alias(config_type, key) or key
        try:
            value = parse_value(types[name], text)
        except ValueError:
            raise ConfigError(f"setting {key}={text!r}: expected {type_name(types[name])}") from None
        _check_value(config_type, key, name, value, text)
        values[key] = value
    return _resolve_aliases(config_type, values, context)


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file whose top-level keys are config fields (values as in a sweep's [base]).

    Raises
    ------
    ConfigError
        The file cannot be read, is malformed TOML (the message gives the line) or has tables.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the settings ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: malformed TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    tables = [key for key, value in data.items() if isinstance(value, dict)]
    if tables:
        raise ConfigError(f"{path}: expected key = value settings only, found table(s) {', '.join(tables)}")
    return data


def build_config(
    config_type: type, values: Mapping[str, Any], base: Any = None, context: str = "this experiment"
) -> Any:
    """``config_type`` (or ``base``) with ``values`` applied, each coerced to its field type.

    Raises
    ------
    ConfigError
        Unknown key or mistyped value, as in :func:`parse_assignments`; also when the config's
        own ``__post_init__`` rejects a value or a combination (a ``ConfigError`` it raises, see
        :func:`check_limits`, is passed on as it is).
    """
    types = _check_keys(config_type, values, context)
    coerced = {}
    for key, value in values.items():
        name = seed_alias(config_type, key) or key
        try:
            coerced[key] = coerce_value(types[name], value)
        except ValueError:
            raise ConfigError(f"setting {key}={value!r}: expected {type_name(types[name])}") from None
        _check_value(config_type, key, name, coerced[key], value)
    coerced = _resolve_aliases(config_type, coerced, context)
    start = config_type() if base is None else base
    try:
        return dataclasses.replace(start, **coerced)
    except ConfigError:  # the config's own validation: it names the setting and what it expects
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"invalid config for {context}: {error}") from None


def config_dict(config: Any, *, canonical: bool = False) -> dict[str, Any]:
    """A config as a JSON-ready dict (tuples become lists, the package JSON policy of
    ``trajcore._json``); ``canonical`` drops execution fields."""
    return {
        f.name: json_ready(getattr(config, f.name))
        for f in dataclasses.fields(config)
        if not (canonical and f.name in EXECUTION_FIELDS)
    }


def run_id(experiment: str, config: Any) -> str:
    """The id of a run: 16 hex digits of sha256 over the experiment name and canonical config.

    The canonical config follows the package JSON policy, where a non-finite float is ``null``. The
    settings rules admit one only in a field whose default is non-finite (no config has one today);
    such a field's NaN, +inf, -inf and None would share an id, so it should take only one of them.
    """
    text = canonical_json({"experiment": experiment, "config": config_dict(config, canonical=True)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
