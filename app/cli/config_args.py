"""Command-line options and config files built from config dataclasses, in the style of
transformers' ``HfArgumentParser`` and TRL's ``TrlParser``.

Every field of a config dataclass becomes ``--field-name`` with its type, its default and its
``metadata["help"]``; a field whose value is itself a config dataclass (``RetrainConfig.ppo``)
becomes a group of options named after it (``--ppo-learning-rate``). So an option exists
exactly when the field does, and its help is the field's, never written twice.

- Types: ``str``, ``int``, ``float``, ``bool`` (``--x`` / ``--no-x``), ``tuple[str, ...]``
  (comma-separated: ``--stages reward,ppo``), and any of them ``| None`` (the word ``none``).
  ``metadata["choices"]`` limits a value to those words.
- ``--config FILE`` (YAML, JSON or TOML; the same keys as the fields, sections as nested
  mappings) sets values over the dataclass defaults; an option given on the command line sets
  values over the file. A key the config does not have, or a value of the wrong type, is one
  sentence naming the file and the key (``ConfigFileError``).

Options are added with ``default=argparse.SUPPRESS``, so the parsed namespace holds only what
was typed, and the file and the defaults are never mistaken for it.
"""

from __future__ import annotations

import argparse
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

DEST_PREFIX = "cfg."
Path_ = tuple[str, ...]  # a field's place: ("ppo", "steps")


class ConfigFileError(ValueError):
    """A config file that cannot be read or says something its config does not have; the
    message is one sentence naming the file and the key."""


@dataclass(frozen=True)
class Option:
    """One leaf field of a config dataclass, as a command-line option."""

    path: Path_
    flag: str
    field: Field[Any]
    kind: type  # str, int, float, bool or tuple (of str)
    optional: bool  # None is a value

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def dest(self) -> str:
        return DEST_PREFIX + self.key

    @property
    def help(self) -> str:
        return str(self.field.metadata.get("help", ""))

    @property
    def choices(self) -> tuple[str, ...] | None:
        choices = self.field.metadata.get("choices")
        return tuple(choices) if choices is not None else None

    def default(self) -> Any:
        if self.field.default is not MISSING:
            return self.field.default
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return None

    def convert(self, value: Any) -> Any:
        """``value`` (typed text, or what a YAML/JSON/TOML file holds) as the field's type.

        Raises:
            ValueError: in words: what the field takes and what it got.
        """
        if value is None or (
            self.optional and isinstance(value, str) and value.strip().lower() in ("none", "null")
        ):
            if self.optional:
                return None
            raise ValueError(f"{self.key} cannot be empty")
        out: Any
        if self.kind is bool:
            out = _to_bool(value, self.key)
        elif self.kind is tuple:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError(f"{self.key} takes a list of words, got {value!r}")
            out = tuple(i.strip() for i in items if i.strip())
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"{self.key} takes a whole number, got {value!r}")
            try:
                out = int(value)
            except ValueError:
                raise ValueError(f"{self.key} takes a whole number, got {value!r}") from None
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"{self.key} takes a number, got {value!r}")
            try:
                out = float(value)  # YAML reads 1e-4 as text: float() takes it
            except ValueError:
                raise ValueError(f"{self.key} takes a number, got {value!r}") from None
        else:
            if not isinstance(value, str):
                raise ValueError(f"{self.key} takes text, got {value!r}")
            out = value
        choices = self.choices
        if choices is not None:
            bad = [v for v in (out if isinstance(out, tuple) else (out,)) if v not in choices]
            if bad:
                raise ValueError(
                    f"{self.key} takes {' | '.join(choices)}, got {', '.join(map(str, bad))}"
                )
        return out


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "yes",
        "1",
        "on",
        "false",
        "no",
        "0",
        "off",
    ):
        return value.strip().lower() in ("true", "yes", "1", "on")
    raise ValueError(f"{key} takes true or false, got {value!r}")


def _leaf_type(hint: Any, where: str) -> tuple[type, bool]:
    """(kind, optional) of a field's type hint; TypeError for a type options cannot carry."""
    optional = False
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) != 1:
            raise TypeError(f"{where}: a union of {hint} cannot be a command-line option")
        hint, args = rest[0], typing.get_args(rest[0])
    if typing.get_origin(hint) is tuple and args in ((str, Ellipsis),):
        return tuple, optional
    if hint in (str, int, float, bool):
        return hint, optional
    raise TypeError(f"{where}: type {hint} cannot be a command-line option")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved type of each field (annotations are text under ``from __future__ import
    annotations``; resolving them compiles each, so once per class)."""
    return typing.get_type_hints(cls)


def config_fields(cls: type) -> tuple[tuple[Path_, Field[Any], Any], ...]:
    """Every field of ``cls`` with its path and resolved type; a nested config dataclass as
    ``(path, field, its class)`` followed by its own fields."""
    return _config_fields(cls, ())


@functools.cache
def _config_fields(cls: type, prefix: Path_) -> tuple[tuple[Path_, Field[Any], Any], ...]:
    out: list[tuple[Path_, Field[Any], Any]] = []
    hints = _hints(cls)
    for f in fields(cls):
        out.append(((*prefix, f.name), f, hints[f.name]))
        if isinstance(hints[f.name], type) and is_dataclass(hints[f.name]):
            out.extend(_config_fields(hints[f.name], (*prefix, f.name)))
    return tuple(out)


def options(cls: type, rename: Mapping[str, str] | None = None) -> list[Option]:
    """The options of config dataclass ``cls``: ``--a-b`` for field ``a.b``, or the name
    ``rename`` gives a dotted key."""
    rename = rename or {}
    out = []
    for path, f, hint in config_fields(cls):
        if isinstance(hint, type) and is_dataclass(hint):
            continue
        kind, optional = _leaf_type(hint, f"{cls.__name__}.{'.'.join(path)}")
        key = ".".join(path)
        flag = rename.get(key, "--" + "-".join(path).replace("_", "-"))
        out.append(Option(path, flag, f, kind, optional))
    return out


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    rename: Mapping[str, str] | None = None,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
    shown_defaults: Mapping[str, Any] | None = None,
) -> list[Option]:
    """Add an option per field of ``cls`` to ``parser``, a group per nested config, and
    ``--config FILE``. ``aliases`` maps a dotted key to more option names (names that scripts
    and docs already use); ``shown_defaults`` the defaults ``--help`` shows where the command
    sets its own. Returns the options."""
    aliases = aliases or {}
    shown_defaults = shown_defaults or {}
    opts = options(cls, rename)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a YAML, JSON or TOML file of settings (the keys are the options' names with _, "
        "sections nested: ppo: {steps: 50}); options typed here override it",
    )
    groups: dict[str, Any] = {}
    nested_help = {
        ".".join(p): f.metadata.get("help", "") for p, f, h in config_fields(cls) if is_dataclass(h)
    }
    for opt in opts:
        section = ".".join(opt.path[:-1])
        if section not in groups:
            title = nested_help.get(section) or section if section else f"{cls.__name__} settings"
            prefix = f" (--{section.replace('.', '-').replace('_', '-')}-...)" if section else ""
            groups[section] = parser.add_argument_group(title + prefix)
        names = [opt.flag, *aliases.get(opt.key, ())]
        default = shown_defaults[opt.key] if opt.key in shown_defaults else opt.default()
        help_ = opt.help if "default" in opt.help else f"{opt.help} (default: {_shown(default)})"
        kwargs: dict[str, Any] = {"dest": opt.dest, "default": argparse.SUPPRESS, "help": help_}
        if opt.kind is bool and not opt.optional:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _typed(opt)
            kwargs["metavar"] = _metavar(opt)
        groups[section].add_argument(*names, **kwargs)
    return opts


def _metavar(opt: Option) -> str:
    if opt.choices is not None and opt.kind is not tuple:
        return "{" + ",".join(opt.choices) + "}"
    return {int: "N", float: "X", bool: "BOOL", tuple: "A,B"}.get(opt.kind, "TEXT")


def _typed(opt: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return opt.convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = opt.kind.__name__  # argparse names the type in its own messages
    return convert


def typed_values(args: argparse.Namespace) -> dict[str, Any]:
    """The options typed on the command line, by dotted key."""
    return {
        k.removeprefix(DEST_PREFIX): v for k, v in vars(args).items() if k.startswith(DEST_PREFIX)
    }


def read_config_file(path: str | Path, cls: type) -> dict[str, Any]:
    """The values a config file sets, by dotted key, each converted to its field's type.

    Raises:
        ConfigFileError: the file cannot be read or parsed, is not a mapping, has a key ``cls``
            does not have, or a value of the wrong type (one sentence naming file and key).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(
            f"{p}: cannot read the config file ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    doc = _parse(p, text)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigFileError(
            f"{p}: a config file holds keys and values (a mapping), not {type(doc).__name__}"
        )
    by_key = {o.key: o for o in options(cls)}
    sections = {".".join(path) for path, _, h in config_fields(cls) if is_dataclass(h)}
    out: dict[str, Any] = {}

    def walk(mapping: dict[Any, Any], prefix: str) -> None:
        for raw, value in mapping.items():
            key = f"{prefix}{str(raw).replace('-', '_')}"
            if key in sections and isinstance(value, dict):
                walk(value, key + ".")
            elif key in by_key:
                try:
                    out[key] = by_key[key].convert(value)
                except ValueError as exc:
                    raise ConfigFileError(f"{p}: {exc}") from None
            else:
                level = prefix.rstrip(".")
                known = sorted(
                    k.removeprefix(prefix) for k in (*by_key, *sections)
                    if k.startswith(prefix) and "." not in k.removeprefix(prefix)
                )  # fmt: skip
                where = f"the {level} section" if level else cls.__name__
                raise ConfigFileError(
                    f"{p}: unknown key {key!r} ({where} takes: {', '.join(known)})"
                )

    walk(doc, "")
    return out


def _parse(p: Path, text: str) -> Any:
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = f" at line {mark.line + 1}" if mark is not None else ""
                problem = getattr(exc, "problem", None) or "not valid YAML"
                raise ConfigFileError(f"{p}: not valid YAML{line}: {problem}") from None
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{p}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError
        if isinstance(exc, ConfigFileError):
            raise
        raise ConfigFileError(f"{p}: not valid TOML: {exc}") from None
    raise ConfigFileError(
        f"{p}: a config file is .yaml, .yml, .json or .toml, not {suffix or 'no suffix'!r}"
    )


def build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of ``cls`` with ``values`` (by dotted key) over its defaults; nested configs
    built the same way. The config's own ``__post_init__`` checks the result (ValueError)."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        key = prefix + f.name
        if isinstance(hints[f.name], type) and is_dataclass(hints[f.name]):
            kwargs[f.name] = build(hints[f.name], values, key + ".")
        elif key in values:
            kwargs[f.name] = values[key]
    return cls(**kwargs)
