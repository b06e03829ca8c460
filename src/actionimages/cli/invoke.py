"""Typed calls of ``actionimages`` subcommands from Python (the demo's stages).

A stage names its options by their Python names (the argparse ``dest``: ``image_size`` for
``--image-size``) and gets back an :class:`Invocation` already parsed by the real parser. A renamed
option, a missing required one or a value the option rejects fails when the stage is *built*, with
the option named, not thirty minutes into a demo. The same invocation then runs in this process or,
to isolate torch and accelerate state between stages, in a fresh one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actionimages.errors import ActionImagesError


@dataclass(frozen=True)
class Invocation:
    """One subcommand: its command line (``argv``, without ``actionimages``) and parsed ``args``."""

    command: str  # the subcommand's words, e.g. "baseline train"
    argv: tuple[str, ...]
    args: argparse.Namespace

    def __str__(self) -> str:
        return "actionimages " + shlex.join(self.argv)


def _root() -> argparse.ArgumentParser:
    from actionimages.cli import build_parser

    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand(root: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    parser = root
    for word in command.split():
        choices = _subparsers(parser)
        if word not in choices:
            known = ", ".join(sorted(choices)) or "none"
            raise ActionImagesError(f"no subcommand {command!r}: {word!r} is not one of {known}")
        parser = choices[word]
    return parser


def _flag(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    return (longs or action.option_strings)[0]


def _option_argv(action: argparse.Action, value: Any) -> list[str]:
    """The command-line words that give ``action`` the Python ``value``."""
    flag = _flag(action)
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ActionImagesError(f"{flag} is a switch: give True or False, not {value!r}")
        return [flag] if value != action.default else []
    if value is True and action.nargs == "?":
        return [flag]  # an optional-value option given without its value (its const)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(action, argparse._AppendAction):
        return [w for v in values for w in (flag, str(v))]
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        return [flag, *map(str, values)]
    if len(values) != 1:
        raise ActionImagesError(f"{flag} takes one value, got {value!r}")
    return [flag, str(values[0])]


def invocation(command: str, *positionals: str | Path, **options: Any) -> Invocation:
    """``actionimages COMMAND POSITIONALS --option value ...``, checked by the real parser.

    ``command`` is the subcommand's words (``"collect"``, ``"baseline train"``); ``options`` are
    named by their Python names; ``None`` leaves an option at its default, a list repeats an
    ``append`` option. Raises :class:`ActionImagesError` naming the unknown option or the value
    the parser rejects.
    """
    root = _root()  # one parser serves the lookup and the parse
    parser = _subcommand(root, command)
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv = [*command.split(), *map(str, positionals)]
    for name, value in options.items():
        if value is None:
            continue
        if name not in actions:
            raise ActionImagesError(
                f"actionimages {command} has no option {name!r}; it has: {', '.join(sorted(actions))}"
            )
        argv += _option_argv(actions[name], value)
    for p in [root, *_all_subparsers(root)]:
        p.exit_on_error = False
    try:
        args = root.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ActionImagesError(f"the CLI rejects: actionimages {shlex.join(argv)} ({exc})") from exc
    return Invocation(command, tuple(argv), args)


def _all_subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for sub in _subparsers(parser).values():
        found += [sub, *_all_subparsers(sub)]
    return found


def _thread_env(threads: int) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def run_in_subprocess(inv: Invocation, threads: int = 1) -> None:
    """Run ``inv`` in a fresh Python process (isolates torch/accelerate state between stages).

    ``threads`` caps OpenMP/MKL threads: on a small CPU shared with other work, idle-spinning
    threads made training ~8x slower than one thread (see docs/results/eval.md).
    """
    code = "import sys; from actionimages.cli import main; sys.exit(main(sys.argv[1:]))"
    print(f"\n$ OMP_NUM_THREADS={threads} {inv}", flush=True)
    proc = subprocess.run([sys.executable, "-c", code, *inv.argv], env=_thread_env(threads))
    if proc.returncode != 0:
        raise ActionImagesError(f"stage command failed (exit {proc.returncode}): {inv}")


def run_in_process(inv: Invocation, threads: int = 1) -> None:
    """Run ``inv`` in this process with ``threads`` torch threads (tests, small machines)."""
    import torch

    print(f"\n$ {inv}  (in process, {threads} thread(s))", flush=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        code = int(inv.args.func(inv.args) or 0)
    finally:
        torch.set_num_threads(before)
    if code != 0:
        raise ActionImagesError(f"stage command failed (exit {code}): {inv}")
