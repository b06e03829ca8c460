"""``actionimages dataset``: check, summarise, convert and repair episode datasets."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _check(args: argparse.Namespace) -> int:
    from actionimages.data.check import check_dataset

    report = check_dataset(args.dir, full=args.full, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    for rep in report.episodes:
        if rep.problems:
            print(f"episode {rep.index}: {len(rep.problems)} problem(s)")
            for p in rep.problems:
                print(f"  - {p}")
    for p in report.dataset_problems:
        print(f"dataset: {p}")
    for note in report.notes:
        print(f"note: {note}")
    n, bad = len(report.episodes), len(report.bad_episodes)
    status = "OK" if report.ok else "PROBLEMS"
    print(
        f"{status}: {n} episodes checked, {bad} with problems, "
        f"{len(report.dataset_problems)} dataset problems"
    )
    return 0 if report.ok else 1


def _info(args: argparse.Namespace) -> int:
    from actionimages.data.check import dataset_info

    info = dataset_info(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines = [
        f"dataset      {info['root']} (LeRobot {info['codebase_version']}, robot {info['robot_type']})",
        f"episodes     {info['episodes']} ({info['video_only_episodes']} video-only)",
        f"frames       {info['frames']} at {info['fps']:g} fps ({info['duration_s']:.1f} s)",
    ]
    if info["episode_length"]:
        el = info["episode_length"]
        lines.append(f"length       min {el['min']}, mean {el['mean']:.1f}, max {el['max']}")
    lines.append(f"tasks        {len(info['tasks'])}: {', '.join(info['tasks'][:10])}")
    lines.append(f"instructions {len(info['instructions'])}")
    for i, text in enumerate(info["instructions"][:10]):
        lines.append(f"  [{i}] {text}")
    for cam, c in info["cameras"].items():
        lines.append(f"camera       {cam}: {c['width']}x{c['height']} {c['codec']} {c['pix_fmt']}")
    check = info["check"]
    if check["ok"]:
        lines.append("check        metadata and frame data OK (videos: actionimages dataset check)")
    else:
        lines.append(
            f"check        FAILS: {check['count']} problem(s); the numbers above may disagree. "
            f"Run: actionimages dataset check {args.dir}"
        )
        lines += [f"  - {p}" for p in check["problems"]]
    print("\n".join(lines))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from actionimages.data import DatasetWriter, open_source
    from actionimages.data.lerobot import dataset_keys
    from actionimages.errors import ActionImagesError

    if args.limit is not None and args.limit < 0:
        raise ActionImagesError(f"--limit must be 0 or more, got {args.limit}")
    src_root, dst_root = Path(args.src).resolve(), Path(args.dst).resolve()
    if src_root == dst_root:
        raise ActionImagesError(
            f"source and destination are the same directory ({src_root}): converting a dataset into "
            "itself would append a copy of every episode; give another DST"
        )
    src = open_source(args.src, kind=args.kind)
    n = len(src) if args.limit is None else min(len(src), args.limit)
    # an episode's key is its source and its name there, so a re-run adds only what is missing
    done = dataset_keys(args.dst)
    written = skipped = 0
    writer = None
    try:
        for i in tqdm(range(n), desc=f"converting {args.src}"):
            key = f"convert:{src_root}#{src.episode_id(i)}"
            if key in done:
                skipped += 1
                continue
            ep = src.episode(i)
            if writer is None:
                writer = DatasetWriter(args.dst, fps=ep.fps, robot_type=args.robot_type)
                done = writer.keys
                if key in done:
                    skipped += 1
                    continue
            writer.add_episode(ep, key=key)
            written += 1
    finally:
        if writer is not None:
            writer.close()
    already = f" (skipped {skipped} already converted from {args.src})" if skipped else ""
    print(f"wrote {written} episodes to {args.dst}{already}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from actionimages.data.restore import restore_columns

    done = restore_columns(args.dir, args.sources)
    print(
        f"restored the actionimages columns of {done['episodes']} episodes "
        f"({done['files']} meta/episodes files rewritten) in {args.dir}"
    )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dataset", help="check, summarise and convert episode datasets (LeRobot v3)")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    c = sub.add_parser("check", help="report problems episode by episode (exit 1 if any)")
    c.add_argument("dir", help="LeRobot v3 dataset directory")
    c.add_argument("--full", action="store_true", help="decode every video frame (slow)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_check)
    i = sub.add_parser("info", help="summarise a dataset: episodes, frames, tasks, cameras, image size, fps")
    i.add_argument("dir")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)
    v = sub.add_parser("convert", help="convert an RLBench / DROID / Bridge layout to LeRobot v3")
    v.add_argument("src", help="source directory")
    v.add_argument(
        "dst",
        help="output LeRobot v3 directory (appended to if it exists; episodes already converted are skipped)",
    )
    v.add_argument(
        "--kind", choices=["rlbench", "droid", "bridge", "lerobot"], default=None, help="default: detect"
    )
    v.add_argument(
        "--limit", type=int, default=None, help="convert only the first N source episodes (N >= 0)"
    )
    v.add_argument("--robot-type", default="panda")
    v.set_defaults(func=_convert)
    r = sub.add_parser(
        "restore-calibration",
        help="put back the actionimages/* columns (calibration, ...) that LeRobot's "
        "delete_episodes / split_dataset / merge_datasets drop, matching episodes by frame data",
    )
    r.add_argument("dir", help="the dataset LeRobot's tool wrote")
    r.add_argument(
        "--from",
        dest="sources",
        action="append",
        required=True,
        help="a dataset it was made from (repeat for a merge)",
    )
    r.set_defaults(func=_restore)

    def _help(_: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=_help)
