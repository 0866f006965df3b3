"""The one registry of models: ``@register_model("name")`` on the class fills it.

The CLI's choices, ``aekit models``, :func:`build_model`, loading a run and the
contract tests all read :data:`MODELS`; there is no other name -> class table.
A stored config can only name a registered class, never import one.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from aekit.errors import ConfigError

if typing.TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type
    config_cls: type

    @property
    def summary(self) -> str:
        return (self.cls.__doc__ or "").strip().splitlines()[0]


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str):
    """Class decorator: register a model under ``name``; its ``config_class`` is its config."""

    def deco(cls: type) -> type:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        cls.model_name = name
        MODELS[name] = ModelSpec(name, cls, cls.config_class)
        return cls

    return deco


def get_spec(name: str) -> ModelSpec:
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    return MODELS[name]


def make_config(
    config_cls: type, values: dict[str, Any] | None = None, *, where: str = "model config"
) -> Any:
    """Build a frozen config dataclass from plain values (JSON lists become tuples).

    Raises:
        ConfigError: an unknown key or a value of the wrong type, naming both.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    hints = typing.get_type_hints(config_cls)
    return config_cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()})


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if origin is tuple:
            items = value if isinstance(value, list | tuple) else [value]
            return tuple(_coerce(v, args[0], where) for v in items)
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}") from None
    return value


def build_model(name: str, config: Any = None, **overrides: Any) -> nn.Module:
    """Create a registered model from its name and a config (dataclass or dict) plus overrides.

    Example:
        >>> import torch, aekit
        >>> model = aekit.build_model("dense", latent_dim=16)  # untrained; aekit.MODELS lists the names
        >>> model.encode(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 16])
    """
    spec = get_spec(name)
    if isinstance(config, spec.config_cls):
        config = dataclasses.replace(config, **overrides) if overrides else config
    else:
        config = make_config(spec.config_cls, {**(config or {}), **overrides}, where=f"model {name!r}")
    try:
        return spec.cls(config)
    except (ValueError, RuntimeError, TypeError) as e:  # sizes torch cannot build, named for the user
        raise ConfigError(f"model {name!r}: cannot be built with these settings ({e})") from None
