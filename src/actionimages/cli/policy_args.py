"""How a world-model policy plans: one set of flags for ``eval``, ``serve`` and ``ladder``.

``--execute`` and ``--views`` apply to every chunked policy (baselines too); the rest are generated
from :class:`~actionimages.policy.action_images.configuration.PlanningConfig`, the action-image
policy's own options, which validate themselves.
"""

from __future__ import annotations

import argparse
from typing import Any

from actionimages.cli.ranges import COUNT


def add_planning_flags(parser: argparse.ArgumentParser) -> None:
    """``--execute``, ``--views``, and one flag per :class:`PlanningConfig` field (``--num-steps``,
    ``--guidance``, ``--mode``, ``--decode-tolerance-px``, alias ``--decode-tolerance``)."""
    from actionimages.cli.config_args import add_dataclass_flags
    from actionimages.policy.action_images.configuration import PlanningConfig

    parser.add_argument("--execute", type=COUNT, help="k: poses executed per plan (default half the horizon)")
    parser.add_argument("--views", nargs="+", help="camera names fed to the policy (default: the first V)")
    add_dataclass_flags(parser, PlanningConfig)


def chunk_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options every chunked policy takes: ``execute`` and ``views`` where given."""
    options: dict[str, Any] = {}
    if args.execute is not None:
        options["execute"] = args.execute
    if args.views:
        options["views"] = list(args.views)
    return options


def planning_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`chunk_options` plus the action-image policy's own (a :class:`PlanningConfig`, checked:
    a clear error naming the flag, not a NaN plan)."""
    from actionimages.cli.config_args import dataclass_from_flags
    from actionimages.policy.action_images.configuration import PlanningConfig

    return {**chunk_options(args), **dataclass_from_flags(PlanningConfig, args).as_options()}
