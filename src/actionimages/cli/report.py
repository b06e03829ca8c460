"""``actionimages report RUN_DIR``: the HTML report of a run (success tables, curves, baselines, videos)."""

from __future__ import annotations

import argparse

from actionimages.cli.ranges import NONNEGATIVE


def run_report(args: argparse.Namespace) -> int:
    from actionimages.eval.report import build_report

    path = build_report(args.run_dir, out=args.out, max_videos=args.max_videos)
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write RUN_DIR/report.html from the evaluations under RUN_DIR",
        description="Collect every results.json / generation.json under RUN_DIR into one HTML page.",
    )
    p.add_argument("run_dir", help="run directory (searched recursively)")
    p.add_argument("--out", help="output HTML path (default RUN_DIR/report.html)")
    p.add_argument("--max-videos", type=NONNEGATIVE, default=4, help="videos per evaluation (default 4)")
    p.set_defaults(func=run_report)
