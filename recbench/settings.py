"""Settings declared once: a dataclass field carries its help, type, choices, bounds and
default, and everything else derives from it.

    @dataclass
    class RunConfig:
        limit: Optional[int] = setting(None, "score at most N test samples", minimum=1, metavar="N")

`add_arguments` turns the fields into argparse flags, `from_namespace` reads them back,
`validate` checks types, choices and bounds before any data or model work starts, and the
results file records `asdict` of the object. A field added to a config therefore appears as
a CLI flag, a Python keyword and a results entry without further code.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import MISSING, Field, field, fields
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import ConfigError, suggest

DEFAULT_SEED = 2024  # the protocol's sampling seed (PROTOCOL §3); the only place it is written

Choices = Union[None, Sequence[str], Callable[[], Sequence[str]]]


def setting(default: Any = MISSING, help: str = "", *, default_factory: Any = MISSING, flag: Optional[str] = None,
            type: Optional[Callable[[str], Any]] = None, choices: Choices = None, cli: bool = True,
            hashed: bool = True, metavar: Optional[str] = None, group: Optional[str] = None,
            minimum: Optional[float] = None, exclusive_minimum: bool = False, negate: Optional[str] = None) -> Any:
    """A config field with what the CLI, validation and hashing need.

    flag: the option name (default --field-name); type: a parser for the CLI string (default:
    from the annotation); choices: a list, or a callable returning one (read from a registry
    when the parser is built); minimum: a lower bound checked by `validate`; negate: for a
    bool defaulting to True, the flag that turns it off (default --no-field-name); hashed:
    whether it enters a config hash (SFT run names)."""
    meta = {"help": help, "flag": flag, "type": type, "choices": choices, "cli": cli, "hashed": hashed,
            "metavar": metavar, "group": group, "minimum": minimum, "exclusive_minimum": exclusive_minimum,
            "negate": negate}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def choices_of(f: Field) -> Optional[List[str]]:
    c = f.metadata.get("choices")
    if c is None:
        return None
    return list(c() if callable(c) else c)


def _hints(cls) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp) -> Tuple[Any, bool]:
    """(inner type, optional?) for Optional[X]; Union[int, str] stays a Union."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return tp, False


def int_or_auto(value: Union[int, str]) -> Union[int, str]:
    """A positive integer or the word 'auto' (batch sizes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer or 'auto', got {value!r}") from None


def flag_name(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def cli_fields(cls) -> List[Field]:
    return [f for f in fields(cls) if f.metadata.get("cli", False)]


def _default_text(f: Field) -> str:
    if f.default is MISSING or f.default is None or isinstance(f.default, bool):
        return ""
    return f" (default: {f.default})"


def cli_type(cls, f: Field) -> Callable[[str], Any]:
    """The parser of a field's CLI string: its declared type=, else one for its annotation."""
    parse = f.metadata.get("type")
    if parse is not None:
        return parse
    tp, _ = _unwrap(_hints(cls)[f.name])
    if tp in (int, float, str):
        return tp
    if tp == Union[int, str]:
        return int_or_auto
    if typing.get_origin(tp) in (list, List):
        return split_list
    raise TypeError(f"setting {cls.__name__}.{f.name} needs an explicit type= parser")


def add_arguments(parser: argparse.ArgumentParser, cls, *, exclude: Iterable[str] = (),
                  include: Optional[Iterable[str]] = None, groups: Optional[Dict[str, str]] = None,
                  defaults: Optional[Dict[str, Any]] = None) -> None:
    """One flag per CLI field of the dataclass `cls`, in declaration order.

    Defaults are left as None on the parser (argparse.SUPPRESS would hide them from --help),
    so `from_namespace` can tell "not given" from "given": the dataclass default applies."""
    hints = _hints(cls)
    skip = set(exclude)
    only = set(include) if include is not None else None
    made: Dict[str, argparse._ArgumentGroup] = {}
    for f in cli_fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        group_name = f.metadata.get("group")
        target: Any = parser
        if group_name and groups and group_name in groups:
            if group_name not in made:
                made[group_name] = parser.add_argument_group(groups[group_name])
            target = made[group_name]
        tp, optional = _unwrap(hints[f.name])
        help_text = f.metadata.get("help", "")
        default = (defaults or {}).get(f.name, f.default)
        if tp is bool:
            if optional:  # tri-state: --x / --no-x / neither (None)
                ex = target.add_mutually_exclusive_group()
                ex.add_argument(flag_name(f), dest=f.name, action="store_true", default=None, help=help_text)
                ex.add_argument(f.metadata.get("negate") or "--no-" + f.name.replace("_", "-"), dest=f.name,
                                action="store_false", default=None, help=argparse.SUPPRESS)
            elif default is True:
                target.add_argument(f.metadata.get("negate") or "--no-" + f.name.replace("_", "-"), dest=f.name,
                                    action="store_false", default=None, help=help_text)
            else:
                target.add_argument(flag_name(f), dest=f.name, action="store_true", default=None, help=help_text)
            continue
        kwargs: Dict[str, Any] = {"dest": f.name, "default": None, "help": help_text + _default_text(f)}
        kwargs["type"] = cli_type(cls, f)
        choices = choices_of(f)
        if choices is not None:
            kwargs["choices"] = choices
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        target.add_argument(flag_name(f), **kwargs)


def from_namespace(cls, args: argparse.Namespace, **overrides):
    """The dataclass from parsed flags: a flag not given keeps the field's default."""
    values = {}
    for f in fields(cls):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    return cls(**values)


def split_list(value: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    """'a,b' or ['a', 'b'] -> ['a', 'b'] (stripped, de-duplicated; None/empty -> None)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    out = list(dict.fromkeys(i.strip() for i in items if i and i.strip()))
    return out or None


def check_keywords(cls, given: Iterable[str], where: str) -> None:
    """A clear error for a keyword that is not a field (with a close match)."""
    valid = {f.name for f in fields(cls)}
    for name in given:
        if name not in valid:
            raise ConfigError(f"{where} got an unknown setting '{name}'" + suggest(name, valid))


def validate(obj) -> None:
    """Types, choices and bounds of every field; the first problem as one clear line.

    Values are coerced where the CLI would coerce them (e.g. '8' -> 8 for an int field given
    as a string from Python), so a config built from keywords and one built from flags agree."""
    hints = _hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        tp, optional = _unwrap(hints[f.name])
        what = f"{flag_name(f)} ({f.name})"
        if value is None:
            if optional or f.default is None:
                continue
            raise ConfigError(f"{what} must be set")
        try:
            value = _coerce(value, tp)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{what}: {exc}") from None
        setattr(obj, f.name, value)
        choices = choices_of(f)
        if choices is not None and value not in choices:
            raise ConfigError(f"{what} must be one of {', '.join(map(str, choices))}, got {value!r}"
                              + (suggest(str(value), choices) if isinstance(value, str) else ""))
        low = f.metadata.get("minimum")
        if low is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < low or (f.metadata.get("exclusive_minimum") and value == low):
                rel = ">" if f.metadata.get("exclusive_minimum") else ">="
                raise ConfigError(f"{what} must be {rel} {low}, got {value!r}")


def _coerce(value, tp):
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise TypeError(f"expected an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(f"expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"expected text, got {value!r}")
        return value
    if tp == Union[int, str]:
        out = int_or_auto(value)
        if isinstance(out, int) and out < 1:
            raise ValueError(f"expected a positive integer or 'auto', got {value!r}")
        return out
    if typing.get_origin(tp) in (list, List):
        out = split_list(value)
        return out if out is not None else []
    return value


def public_dict(obj) -> Dict[str, Any]:
    """asdict, for results files."""
    return dataclasses.asdict(obj)
