"""Command-line flags generated from config dataclasses, so a new config field needs no new flag.

Two uses:

- :func:`add_dataclass_flags` / :func:`dataclass_from_flags`: one flag per field of a flat
  dataclass (``TrainConfig``), with its default; booleans that default to True get ``--no-NAME``.
- :func:`add_override_flags` / :func:`apply_overrides`: optional ``--model.FIELD`` flags for every
  scalar or tuple field of a nested dataclass (``ModelConfig``), nested specs included
  (``--model.mask_mix.i2a 0.45``); an absent flag keeps the registered config's value.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from actionimages.errors import ActionImagesError


def parse_bool(text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def _scalar_parser(tp: Any, optional: bool, ranged: Callable[[str], Any] | None = None):
    base = parse_bool if tp is bool else tp if tp in (int, float, str) else None
    if base is not None and ranged is not None:
        base = ranged
    if base is None:
        return None
    if not optional:
        return base

    def parse(text: str):
        return None if str(text).lower() == "none" else base(text)

    parse.__name__ = getattr(base, "__name__", "value")
    return parse


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    unset: bool = False,
    ranges: Mapping[str, Callable[[str], Any]] | None = None,
) -> None:
    """One flag per field of the flat dataclass ``cls``.

    Defaults come from the dataclass; with ``unset`` an absent flag is left ``None`` instead, so
    :func:`dataclass_from_flags` can take it from a saved config (a resumed run's) first. A field's
    ``metadata`` may give ``help``, ``choices``, ``metavar`` and ``aliases`` (more flag names).
    ``ranges`` maps field names to argparse types that parse and bound a scalar field's value
    (:mod:`actionimages.cli.ranges`), so nonsense is refused when the command line is parsed; an
    optional field still takes ``none``.
    """
    hints = typing.get_type_hints(cls)
    unknown = set(ranges or ()) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ActionImagesError(f"ranges for fields {sorted(unknown)} that {cls.__name__} does not have")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = None if unset else default
        if tp is bool:
            if default:
                parser.add_argument(_flag("no_" + f.name), dest=f.name, action="store_false", default=shown)
            else:
                parser.add_argument(_flag(f.name), dest=f.name, action="store_true", default=shown)
            continue
        if typing.get_origin(tp) is tuple:  # a range bounds each element; tuple[float, float] takes two
            elems = typing.get_args(tp)
            nargs = "+" if Ellipsis in elems else len(elems)
            parse = (ranges or {}).get(f.name) or elems[0]
            parser.add_argument(_flag(f.name), dest=f.name, type=parse, nargs=nargs, default=shown)
            continue
        parse = _scalar_parser(tp, optional, (ranges or {}).get(f.name))
        if parse is None:
            raise ActionImagesError(f"{cls.__name__}.{f.name}: no command-line form for type {tp!r}")
        meta = dict(f.metadata)
        help_text = meta.get("help") or (f"default: {default}" if unset else None)
        extra = {k: meta[k] for k in ("choices", "metavar") if k in meta}
        names = (_flag(f.name), *meta.get("aliases", ()))
        parser.add_argument(*names, dest=f.name, type=parse, default=shown, help=help_text, **extra)


def dataclass_from_flags(
    cls: type, args: argparse.Namespace, saved: dict[str, Any] | None = None, **fixed: Any
) -> Any:
    """``cls`` built from the flags :func:`add_dataclass_flags` added.

    Precedence: ``fixed``, then flags given, then ``saved`` (for flags added with ``unset``), then
    the dataclass defaults. Unknown keys in ``saved`` are ignored (an older run's config).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in (saved or {}).items() if k in names}
    values.update({n: getattr(args, n) for n in names if getattr(args, n, None) is not None})
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**{**values, **fixed})


def _override_fields(cls: type, prefix: str):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(hints[f.name])
        path = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(tp):
            yield from _override_fields(tp, path)
        elif typing.get_origin(tp) is tuple:
            yield path, typing.get_args(tp)[0], "+"
        else:
            parse = _scalar_parser(tp, optional)
            if parse is not None:
                yield path, parse, None


def add_override_flags(
    parser: argparse.ArgumentParser, cls: type, prefix: str, skip: tuple[str, ...] = ()
) -> None:
    """Optional ``--PREFIX.FIELD[.SUBFIELD]`` flags for every scalar/tuple field of ``cls`` but
    the top-level fields in ``skip``."""
    group = parser.add_argument_group(
        f"{prefix} config overrides",
        f"change one field of the chosen config, e.g. --{prefix}.obs_align false",
    )
    for path, parse, nargs in _override_fields(cls, prefix):
        if path.split(".")[1] in skip:
            continue
        group.add_argument("--" + path, dest=path, type=parse, nargs=nargs, default=None, metavar="V")


def overrides_from_flags(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """``{"mask_mix.i2a": 0.45, ...}`` for the override flags that were given."""
    out = {}
    for key, value in vars(args).items():
        if key.startswith(prefix + ".") and value is not None:
            out[key[len(prefix) + 1 :]] = tuple(value) if isinstance(value, list) else value
    return out


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of the (frozen, nested) dataclass ``config`` with dotted-path fields replaced."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(config)}
    for path, value in overrides.items():
        head, _, rest = path.partition(".")
        if head not in names:
            raise ActionImagesError(f"{type(config).__name__} has no field {head!r}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = apply_overrides(getattr(config, head), sub)
    return dataclasses.replace(config, **direct)
