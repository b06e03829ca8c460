"""The ``actionimages`` console script.

Each module in this package that defines ``register(subparsers)`` adds one subcommand
(``collect``, ``dataset``, ``train``, ``eval``, ``report``, ``demo``, ...). The subcommand's
parser must set ``func`` (``parser.set_defaults(func=...)``) to a callable taking the parsed
arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from actionimages import __version__
from actionimages.errors import ActionImagesError


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are one line, ``actionimages COMMAND: error: ...``, like the commands' own
    (argparse's default prints the whole usage first). Subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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


# What torch.save (its zip writer) raises when a write fails, e.g. on a full disk: a RuntimeError.
_TORCH_WRITE_FAILURES = ("inline_container", "file write failed", "PytorchStreamWriter failed")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_os_error(exc: OSError) -> str:
    """``PATH: cause`` of an :class:`OSError` (``PATH -> PATH2`` for a rename), else ``str(exc)``."""
    cause = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError) and exc.filename and os.path.isfile(exc.filename):
        cause = f"{cause} (a file, where a directory is needed)"
    if exc.filename is None or not exc.strerror:
        return _one_line(str(exc))
    where = os.fsdecode(exc.filename) if isinstance(exc.filename, bytes | os.PathLike) else str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return _one_line(f"{where}: {cause}")


def torch_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's RuntimeError for a failed write (a full or unwritable disk)."""
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _TORCH_WRITE_FAILURES)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a refused command line (its line is printed)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    # Bad input, and files that cannot be written (an output path that is a file, a read-only
    # folder, a full disk): one clear line naming the path, exit code 2, no traceback.
    try:
        return int(args.func(args) or 0)
    except ActionImagesError as exc:
        message = str(exc)
    except OSError as exc:
        message = describe_os_error(exc)
    except RuntimeError as exc:
        if not torch_write_failure(exc):
            raise
        message = f"could not write: disk full or unwritable ({_one_line(exc, 200)})"
    print(f"actionimages {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
