"""The ``actionimages`` console script.

Each module in this package that defines ``register(subparsers)`` adds one subcommand
(``collect``, ``dataset``, ``train``, ``eval``, ``report``, ``demo``, ...). The subcommand's
parser must set ``func`` (``parser.set_defaults(func=...)``) to a callable taking the parsed
arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from actionimages import __version__
from actionimages.errors import ActionImagesError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actionimages",
        description="Action Images: robot actions as multiview heatmap videos; a video model as a policy.",
    )
    parser.add_argument("--version", action="version", version=f"actionimages {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ActionImagesError as exc:  # bad input: one clear line, no traceback
        print(f"actionimages {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
