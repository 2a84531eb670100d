"""Configurations as plain dicts and back: the one way checkpoints, bench settings and reports store dataclasses.

:func:`to_dict` turns a (nested) dataclass into dicts, lists, numbers and strings — what ``torch.save`` with
``weights_only`` loading and JSON both accept. :func:`from_dict` builds the dataclass again from its field
annotations: nested dataclasses are rebuilt (a partial mapping completes the field's own default), tuples come back
as tuples, and a value of the wrong type or a key the dataclass does not have is refused in one line that lists the
settings it has. :func:`nest` turns dotted keys (``-o known.steps=150``) into nested mappings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting the configuration does not have, or a value of the wrong type."""


def to_dict(config: Any) -> dict[str, Any]:
    """``config`` (a dataclass instance, nested ones included) as plain dicts; tuples become lists."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"to_dict needs a dataclass instance; got {type(config).__name__}")
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def settings_text(cls: type) -> str:
    """``name=default, …`` of a dataclass: what an error lists when a key is unknown."""
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out.append(f"{f.name}={f.default!r}")
        elif f.default_factory is not dataclasses.MISSING:
            out.append(f"{f.name}={f.default_factory()!r}")
        else:
            out.append(f.name)
    return ", ".join(out)


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str | None = None, strict: bool = True) -> T:
    """The dataclass ``cls`` from ``data`` (as :func:`to_dict` wrote it, or user settings); fields not in ``data``
    keep their defaults. ``strict`` refuses keys ``cls`` does not have (else they are ignored: an older flat
    checkpoint config holds other sections' keys too); ``where`` names the configuration in error messages."""
    name = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name}: expected a mapping of settings; got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown and strict:
        raise ConfigError(f"{name} has no setting {', '.join(map(str, unknown))}; its settings (defaults): "
                          f"{settings_text(cls)}")
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: _coerce(hints[k], _over_default(defaults[k], v), f"{name}.{k}") for k, v in data.items() if k in names}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # a dataclass's own checks (__post_init__)
        raise ConfigError(f"{name}: {err}") from None


def _over_default(f: dataclasses.Field, value: Any) -> Any:
    """A partial mapping for a nested dataclass field, completed by that field's own default (not the nested
    class's defaults): ``{"steps": 150}`` changes one setting of the field's default run."""
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    if isinstance(value, Mapping) and dataclasses.is_dataclass(default) and not isinstance(default, type):
        return {**to_dict(default), **value}
    return value


def nest(options: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested mappings: ``{"known.steps": 150}`` → ``{"known": {"steps": 150}}``."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part} is set both as a value and as a group")
        node[last] = value
    return out


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the annotation ``hint`` says, or a one-line :class:`ConfigError`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {hint}")
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value):
            return value
        return from_dict(hint, value, where=where)  # type: ignore[arg-type]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} takes true or false; got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where} takes a whole number; got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} takes a number; got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} takes a text; got {value!r}")
    container = origin or hint
    if container in (tuple, list):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{where} takes a list; got {value!r}")
        item = args[0] if args and (container is list or (len(args) == 2 and args[1] is Ellipsis)) else Any
        items = [_coerce(item, v, where) for v in value]
        return tuple(items) if container is tuple else items
    if container is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} takes a mapping; got {value!r}")
        return dict(value)
    return value
