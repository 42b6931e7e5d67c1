"""Layer built-in defaults < YAML files < --set < explicit flags, then validate once.

Each leaf remembers where it came from, so a validation error names the file (or the
`--set`) and the dotted key that caused it, in one line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dogbreed.config.schema import Config
from dogbreed.errors import ConfigError

DEFAULTS = "built-in defaults"


class _Loader(yaml.SafeLoader):
    """YAML with the 1.2 core schema's booleans: only true/false.

    PyYAML follows YAML 1.1, where Off, On, yes and no are booleans too, so
    `early_stopping: Off` would arrive as False instead of the strategy name."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, dotted + ".")
        else:
            yield dotted


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    tree: Any = value
    for part in reversed(dotted.split(".")):
        tree = {part: tree}
    return tree


def parse_set(item: str) -> tuple[str, Any]:
    """'train.lr=0.01' -> ('train.lr', 0.01); values are read as YAML scalars or lists."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.lr=0.01")
    try:
        value = _load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path given to --config")
    try:
        data = _load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at `loc` (for 'did you mean')."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            return []
        field = getattr(current, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _describe(error: Mapping[str, Any], keys: list[str]) -> str:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(keys)}"
        return f"unknown key ({hint})"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return "required key is missing"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{message}; got {value!r}"
    return message


class Origins:
    """Which layer set each dotted key."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}

    def add(self, tree: Mapping[str, Any], origin: str) -> None:
        for key in _leaves(tree):
            self._by_key[key] = origin

    def of(self, dotted: str) -> str:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            origin = self._by_key.get(".".join(parts[:end]))
            if origin:
                return origin
        # A key below one a layer set (e.g. a whole mapping given at once).
        for key, origin in self._by_key.items():
            if key.startswith(dotted + "."):
                return origin
        return DEFAULTS


def load_config(
    files: Iterable[Path | str] = (),
    sets: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective config. Raises ConfigError with one line naming file and key."""
    merged: dict[str, Any] = {}
    origins = Origins()
    for file in files:
        path = Path(file)
        layer = read_yaml(path)
        origins.add(layer, str(path))
        merged = _merge(merged, layer)
    for item in sets:
        key, value = parse_set(item)
        layer = _nest(key, value)
        origins.add(layer, f"--set {key}")
        merged = _merge(merged, layer)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        layer = _nest(key, value)
        origins.add(layer, f"--{key.split('.')[-1].replace('_', '-')}")
        merged = _merge(merged, layer)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        dotted = ".".join(str(part) for part in first["loc"]) or "(top level)"
        keys = _known_keys(Config, tuple(first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        origin = origins.of(dotted)
        where = origin if origin == f"--set {dotted}" else f"{origin}: {dotted}"
        raise ConfigError(f"{where}: {_describe(first, keys)}{more}") from None


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
