"""Typed configuration: frozen dataclasses filled from TOML, checked once when loaded.

Every config section is a frozen dataclass with defaults. :func:`from_dict` fills one from a
(possibly nested) dict, refusing unknown keys and values of the wrong type with an error that
names the key, what was expected and what came (and, for a misspelt key, the closest accepted
one). A field may carry limits (``field(default=0.5, metadata=limits(ge=0, le=1))``), checked by
:func:`from_dict` under the key's full name and by :func:`check_limits` for objects built in
code. :func:`apply_overrides` applies ``a.b=value`` strings from the command line.
"""
from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from epiflow.input_files import read_text_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "from_dict", "load_config", "to_dict", "apply_overrides", "limits",
           "check_limits"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key that does not exist or a value of the wrong type."""


def _type_name(tp) -> str:
    """How an error names the type ``tp`` (unions and literals spelt out)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return f"one of {list(typing.get_args(tp))}"
    if tp is type(None):
        return "nothing (leave the key out)"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp, key: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key {key!r}: expected one of "
                              f"{list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a table, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    if isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r} "
                      f"({type(value).__name__})")


def limits(ge: float | None = None, le: float | None = None, gt: float | None = None) -> dict:
    """Field metadata that bounds a number: ``ge`` <= value <= ``le``, value > ``gt``."""
    return {"limits": {k: v for k, v in (("ge", ge), ("le", le), ("gt", gt)) if v is not None}}


def _limit_error(value, bounds: dict, key: str) -> str | None:
    """The message for ``value`` outside ``bounds`` (see :func:`limits`), or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None   # None (off) and non-numbers are the type check's business
    bad = (("ge" in bounds and not value >= bounds["ge"]) or
           ("le" in bounds and not value <= bounds["le"]) or
           ("gt" in bounds and not value > bounds["gt"]))
    if not bad:
        return None
    lo = f">= {bounds['ge']}" if "ge" in bounds else f"> {bounds['gt']}" if "gt" in bounds else ""
    hi = f"<= {bounds['le']}" if "le" in bounds else ""
    return f"config key {key!r}: expected a number {' and '.join(x for x in (lo, hi) if x)}, " \
           f"got {value!r}"


def check_limits(obj, where: str = "") -> None:
    """Raise ConfigError for the first field of the dataclass ``obj`` outside its limits."""
    prefix = f"{where}." if where else ""
    for f in dataclasses.fields(obj):
        error = _limit_error(getattr(obj, f.name), f.metadata.get("limits", {}), prefix + f.name)
        if error:
            raise ConfigError(error)


def _unknown_keys(unknown: list[str], accepted: list[str], where: str,
                  nested: dict[str, list[str]]) -> ConfigError:
    """The error for keys not among ``accepted``, with the closest accepted key for each (or
    the key of that name in a sub-table: ``nested`` maps a sub-table to its keys)."""
    prefix = f"{where}." if where else ""

    def closest(key: str) -> str | None:
        inside = [f"{table}.{key}" for table, keys in nested.items() if key in keys]
        close = inside or difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
        return close[0] if close else None

    hints = [f"{prefix + close!r} for {prefix + str(k)!r}" for k in unknown
             if (close := closest(str(k)))]
    return ConfigError(f"unknown config key(s) {[prefix + str(k) for k in unknown]}"
                       f"{'; did you mean ' + ', '.join(hints) + '?' if hints else ''}; "
                       f"accepted keys{' in ' + where if where else ''}: {accepted}")


def from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``; unknown keys, wrong types, values outside a
    field's :func:`limits` and values its ``__post_init__`` refuses raise ConfigError, naming the
    key (``where`` is the section's own key, e.g. ``calibrate.people``)."""
    data = {} if data is None else data
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or cls.__name__!r}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        nested = {n: [f.name for f in dataclasses.fields(hints[n])] for n in fields
                  if dataclasses.is_dataclass(hints[n])}
        raise _unknown_keys(unknown, sorted(fields), where, nested)
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], key)
        error = _limit_error(kwargs[name], fields[name].metadata.get("limits", {}), key)
        if error:
            raise ConfigError(error)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"config section {where or cls.__name__!r}: {err}") from None


def to_dict(obj) -> dict:
    """A config dataclass as plain TOML-able data (Paths as strings, tuples as lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(obj)


def load_config(cls: type[T], path) -> T:
    """Read a TOML file into the dataclass ``cls``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        return from_dict(cls, tomllib.loads(read_text_file(path, "a TOML config file")))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Apply ``section.key=value`` strings (value parsed as TOML, else taken as a string)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a config section")
            node = node[part]
        node[parts[-1]] = value
    return from_dict(type(cfg), data)
