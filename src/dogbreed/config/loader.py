"""Layer built-in defaults < YAML files < --set < explicit flags, then validate once.

Each leaf remembers where it came from, so a validation error names the file (or the
`--set`) and the dotted key that caused it, in one line.

Relative paths in a config file (PATH_KEYS) are read from that file's folder, so
`-c other/dir/local.yaml` means the same wherever it is run from; paths given with `--set`
or a flag stay relative to the current folder, as any command-line path is.
`require_path` is the check for a path a command is about to read.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dogbreed.config.schema import Config, TuneConfig
from dogbreed.errors import ConfigError
from dogbreed.regular_files import FileRefusedError, read_regular

DEFAULTS = "built-in defaults"
# Keys holding a local path (or a URL / keyword, left alone) that a config file may set.
PATH_KEYS = ("workspace", "data.source", "data.uri", "model.weights")
KEYWORDS = {"model.weights": ("imagenet", "none")}
MAX_DEPTH = 16  # the schema nests 4 levels; anything far deeper is a mistake or an attack
# A whole config is a few hundred values, but YAML aliases let 300 bytes stand for a billion
# (`b: &b [*a, *a, ...]` nine deep): every walk of such a tree would never end.
MAX_VALUES = 100_000
MAX_SHOWN = 60  # characters of a bad value quoted back in an error line
MAX_CONFIG_BYTES = 2**20  # configs are a few kilobytes
# What reading or validating a hostile value raises besides the errors it should: Python's
# 4,300-digit cap on int(), RecursionError from deep nesting, OverflowError from huge numbers.
VALUE_FAULTS = (ValueError, OverflowError, RecursionError, MemoryError)


class _Loader(yaml.SafeLoader):
    """YAML with the 1.2 core schema's booleans (only true/false), and unique keys.

    PyYAML follows YAML 1.1, where Off, On, yes and no are booleans too, so
    `early_stopping: Off` would arrive as False instead of the strategy name. And PyYAML
    keeps the last of two equal keys, so a second `lr:` further down a file silently
    overrode the first; YAML says keys are unique, so that is a syntax error naming both lines.
    A merge (`<<: *base`) may still override what it merges."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in lines:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key_node.value!r} given twice, on lines {lines[key_node.value]} and {line}",
                        key_node.start_mark,
                    )  # fmt: skip
                lines[key_node.value] = line
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}... ({len(text)} characters)"


def _shape_fault(tree: Any, limit: int = MAX_DEPTH) -> str | None:
    """What is wrong with the shape of `tree`, else None: it nests deeper than `limit` (naming
    the dotted path), or it holds more than MAX_VALUES values (YAML aliases expanding). Iterative
    and bounded by MAX_VALUES: the recursive helpers below (_leaves, _merge) and pydantic must
    never see such a tree."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(tree, ())]
    seen = 0
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"holds more than {MAX_VALUES:,} values (YAML aliases repeating each other?); no config is that large"
        if len(path) > limit:
            return f"{'.'.join(path[:limit])}.… nests more than {MAX_DEPTH} levels deep; no config key is that deep"
        if isinstance(node, Mapping):
            stack.extend((value, (*path, str(key))) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, f"[{at}]")) for at, value in enumerate(node))
    return None


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
    except VALUE_FAULTS as exc:
        raise ConfigError(f"--set {key}: cannot read the value {_shown(raw)} ({_fault(exc)}); give a plain value") from None
    fault = _shape_fault(value, MAX_DEPTH - key.count(".") - 1)
    if fault is not None:
        raise ConfigError(f"--set {key}: the value {fault}")
    return key, value


def _fault(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large"
    return str(exc).splitlines()[0][:MAX_SHOWN] if str(exc) else type(exc).__name__


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; check the path given to --config")
    try:
        # A FIFO, a device or a huge file given as --config: refused before it is read.
        text = read_regular(path, MAX_CONFIG_BYTES, "the config file limit of").decode("utf-8")
    except FileRefusedError as exc:
        raise ConfigError(f"{path}: {exc.problem}; --config takes a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; --config takes a YAML file") from None
    try:
        data = _load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the syntax") from None
    except VALUE_FAULTS as exc:
        raise ConfigError(f"{path}: cannot read it ({_fault(exc)}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    fault = _shape_fault(data)
    if fault is not None:
        raise ConfigError(f"{path}: {fault}")
    return data


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _is_local_path(dotted: str, value: str) -> bool:
    return "://" not in value and value not in KEYWORDS.get(dotted, ())


def _relative_to_file(layer: dict[str, Any], path: Path) -> dict[str, Any]:
    """The layer with its relative PATH_KEYS values joined to the file's folder."""
    folder = path.expanduser().absolute().parent
    for dotted in PATH_KEYS:
        value = _get(layer, dotted)
        if not isinstance(value, str) or not value or not _is_local_path(dotted, value):
            continue
        if not Path(value).expanduser().is_absolute():
            layer = _merge(layer, _nest(dotted, os.path.normpath(folder / value)))
    return layer


def require_path(config: Config, dotted: str) -> None:
    """A ConfigError naming the file (or --set) and key when the local path at `dotted` is missing
    (a path given as a flag or argument is left to the command, whose error quotes it)."""
    value = _get(config.model_dump(), dotted)
    if not isinstance(value, str) or not _is_local_path(dotted, value) or Path(value).expanduser().exists():
        return
    origin = config._origins.get(dotted)
    if origin is not None and origin.startswith("--") and not origin.startswith("--set "):
        return  # an explicit flag or argument: the command's own error names what was typed
    if origin is not None and not origin.startswith("--"):
        how = "relative paths in a config file are read from the file's folder"
    else:
        how = "relative paths on the command line are read from the current folder"
    raise ConfigError(f"{config.origin(dotted)}: {value} not found ({how}); fix the path")


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model whose fields are the keys valid at `loc` (stepping through the
    models' own fields and the values of dict fields such as tune.ranges), else None."""
    current: Any = model
    parts = list(loc)
    while parts:
        field = getattr(current, "model_fields", {}).get(parts.pop(0))
        annotation = getattr(field, "annotation", None)
        if typing.get_origin(annotation) is dict and parts:
            parts.pop(0)  # the dict's own key (a range's name)
            annotation = typing.get_args(annotation)[1]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        current = annotation
    return current


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at `loc` (for 'did you mean')."""
    at = _model_at(model, loc[:-1])
    return list(at.model_fields) if at is not None else []


def _missing_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """What the missing key at `loc` takes (its schema description), for the error line."""
    at = _model_at(model, loc[:-1])
    field = at.model_fields.get(str(loc[-1])) if at is not None else None
    return f": {field.description.rstrip('.')}" if field is not None and field.description else ""


def _describe(error: Mapping[str, Any], keys: list[str], hint: str = "") -> str:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(keys)}"
        return f"unknown key ({hint})"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return f"required key is missing{hint}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{message}; got {_shown(value)}"
    return message


class Origins:
    """Which layer set each dotted key."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}

    def add(self, tree: Mapping[str, Any], origin: str) -> None:
        for key in _leaves(tree):
            self._by_key.pop(key, None)  # re-inserted: the dict's order is the order keys were last set
            self._by_key[key] = origin

    def all(self) -> list[str]:
        return list(self._by_key.values()) or [DEFAULTS]

    def of(self, dotted: str) -> str:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            origin = self._by_key.get(".".join(parts[:end]))
            if origin:
                return origin
        # No layer set the key or a value above it. A mapping's own check (Grid with a
        # continuous range): every layer that set a key below it, since the check reads them
        # together and any of them may be the one to fix. Else a missing key: the layer that
        # last set one beside it (a range given without its `type`).
        below = list(dict.fromkeys(origin for key, origin in self._by_key.items() if key.startswith(dotted + ".")))
        if below:
            return ", ".join(below)
        for end in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:end]) + "."
            beside = [origin for key, origin in self._by_key.items() if key.startswith(prefix)]
            if beside:
                return beside[-1]
        return DEFAULTS


def _under_built_in_ranges(merged: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """`merged` with the built-in tune.ranges put under it when `layer` edits one of them
    in part (`--set tune.ranges.lr.min=1e-4`: keys without the range's `type`) and no layer
    below gave any ranges. Then only that key changes and the rest of the search stays; a
    range given whole, with its `type`, still stands for itself (a file listing only `lr`
    searches only lr)."""
    edits = _get(layer, "tune.ranges")
    if not isinstance(edits, Mapping) or _get(merged, "tune.ranges") is not None:
        return merged
    built_in = TuneConfig().ranges
    if not any(name in built_in and isinstance(edit, Mapping) and "type" not in edit for name, edit in edits.items()):
        return merged
    ranges = {name: spec.model_dump(exclude_none=True) for name, spec in built_in.items()}
    return _merge(merged, {"tune": {"ranges": ranges}})


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
        layer = _relative_to_file(read_yaml(path), path)
        origins.add(layer, str(path))
        merged = _merge(_under_built_in_ranges(merged, layer), layer)
    for item in sets:
        key, value = parse_set(item)
        layer = _nest(key, value)
        origins.add(layer, f"--set {key}")
        merged = _merge(_under_built_in_ranges(merged, layer), layer)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        layer = _nest(key, value)
        origins.add(layer, f"--{key.split('.')[-1].replace('_', '-')}")
        merged = _merge(merged, layer)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        dotted = ".".join(str(part) for part in first["loc"]) or "(top level)"
        keys = _known_keys(Config, tuple(first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        origin = origins.of(dotted)
        where = origin if origin == f"--set {dotted}" else f"{origin}: {dotted}"
        hint = _missing_hint(Config, tuple(first["loc"])) if first["type"] == "missing" else ""
        raise ConfigError(f"{where}: {_describe(first, keys, hint)}{more}") from None
    except VALUE_FAULTS as exc:  # after ValidationError, itself a ValueError
        # A validator that overflowed instead of raising a ValidationError: name what we can.
        raise ConfigError(f"{', '.join(sorted(set(origins.all())))}: a value cannot be used ({_fault(exc)})") from None
    config._origins = {key: origins.of(key) for key in PATH_KEYS if origins.of(key) != DEFAULTS}
    return config


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
