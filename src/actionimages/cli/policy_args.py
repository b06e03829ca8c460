"""How a world-model policy plans: one set of flags for ``eval``, ``serve`` and ``ladder``.

``--execute`` and ``--views`` apply to every chunked policy (baselines too); the rest only to the
action-image policy (:class:`~actionimages.policy.action_images.policy.ActionImagePolicy`'s options).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from actionimages.errors import ActionImagesError


def add_planning_flags(parser: argparse.ArgumentParser) -> None:
    """``--execute``, ``--views``, ``--num-steps``, ``--guidance``, ``--mode``, ``--decode-tolerance``."""
    parser.add_argument("--execute", type=int, help="k: poses executed per plan (default half the horizon)")
    parser.add_argument("--views", nargs="+", help="camera names fed to the policy (default: the first V)")
    parser.add_argument("--num-steps", type=int, default=8, help="sampling steps per plan (default 8)")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance (1 = off)")
    parser.add_argument(
        "--mode",
        choices=("joint", "i2a"),
        default="joint",
        help="generate observation + action video (joint, default) or the action video only (i2a)",
    )
    parser.add_argument(
        "--decode-tolerance",
        type=float,
        metavar="PX",
        help="pixels a generated blob may sit off the other views' point before its frame is invalid "
        "(default: the codec's, max(1, 0.08σ))",
    )


def chunk_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options every chunked policy takes: ``execute`` and ``views`` where given."""
    options: dict[str, Any] = {}
    if args.execute is not None:
        options["execute"] = args.execute
    if args.views:
        options["views"] = list(args.views)
    return options


def planning_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`chunk_options` plus the action-image policy's own, checked (a clear error, not a
    NaN plan): ``num_steps``, ``guidance``, ``mode`` and ``decode_tolerance_px`` where given."""
    if args.num_steps < 1:
        raise ActionImagesError(f"--num-steps must be >= 1, got {args.num_steps}")
    if not (math.isfinite(args.guidance) and args.guidance >= 0):
        raise ActionImagesError(f"--guidance must be a non-negative number, got {args.guidance}")
    tol = args.decode_tolerance
    if tol is not None and not (math.isfinite(tol) and tol > 0):
        raise ActionImagesError(f"--decode-tolerance must be a positive number of pixels, got {tol}")
    options = {**chunk_options(args), "num_steps": args.num_steps, "guidance": args.guidance}
    options["mode"] = args.mode
    if tol is not None:
        options["decode_tolerance_px"] = tol
    return options
