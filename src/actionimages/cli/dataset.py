"""``actionimages dataset``: check, summarise, convert and repair episode datasets."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from actionimages.cli.ranges import float_above


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


ROBOT_OPTIONS = ("calibration", "camera", "gripper_column", "mjcf", "ee_site")  # only with a pose source


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    """``open_source`` arguments: the ``robot`` reader's when a pose source is named, else the kind."""
    from actionimages.data.sources.robot import parse_camera_map
    from actionimages.errors import ActionImagesError

    if args.pose_column is None and args.joints_column is None and args.kind != "robot":
        given = [f"--{o.replace('_', '-')}" for o in ROBOT_OPTIONS if getattr(args, o)]
        if given:
            raise ActionImagesError(
                f"{', '.join(given)} import your own robot's LeRobot data: name the end-effector pose source "
                "too (--pose-column COL, or --joints-column COL with --mjcf)"
            )
        return {"kind": args.kind}
    if args.kind not in (None, "robot"):
        raise ActionImagesError(
            f"--pose-column / --joints-column read a LeRobot dataset (kind robot), not {args.kind}"
        )
    return {
        "kind": "robot",
        "calibration": args.calibration,
        "cameras": parse_camera_map(args.camera),
        "pose_column": args.pose_column,
        "pose_format": args.pose_format,
        "joints_column": args.joints_column,
        "mjcf": args.mjcf,
        "ee_site": args.ee_site,
        "gripper_column": args.gripper_column,
        "gripper_range": args.gripper_range,
        "task": args.task,
    }


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from actionimages.data import DatasetWriter, open_source
    from actionimages.data.episode import content_key
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
    if dst_root.exists() and not dst_root.is_dir():
        raise ActionImagesError(f"{args.dst}: a file, where the output dataset directory DST is needed")
    src = open_source(args.src, **_source_options(args))
    n = len(src) if args.limit is None else min(len(src), args.limit)
    # An episode's key is its content (data.episode.content_key), so a re-run, or a copy of the source
    # at another path, adds only what is missing; datasets converted before keyed by path still skip.
    done = dataset_keys(args.dst)
    written = skipped = 0
    writer = None
    try:  # leave=False: the bar is erased, so a bad source episode gives its one error line alone
        for i in tqdm(range(n), desc=f"converting {args.src}", leave=False):
            if f"convert:{src_root}#{src.episode_id(i)}" in done:  # the earlier path key
                skipped += 1
                continue
            ep = src.episode(i)
            if args.fps is not None:
                ep = dataclasses.replace(ep, fps=float(args.fps))
            key = f"convert:{content_key(ep)}"
            if key in done:
                skipped += 1
                continue
            ep.info.setdefault("converted_from", f"{src_root}#{src.episode_id(i)}")
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


def _unwrap_euler(args: argparse.Namespace) -> int:
    from actionimages.data.unwrap import unwrap_dataset

    done = unwrap_dataset(args.dir)
    if done["episodes"] or done["files"]:
        print(
            f"unwrapped the Euler angles of {done['episodes']} episodes ({done['frames']} frames changed, "
            f"{done['files']} files rewritten, checksums and statistics updated) in {args.dir}"
        )
    elif done["marked"]:
        print(f"no Euler angle wraps in {args.dir}; meta/info.json now records its angles as unwrapped")
    else:
        print(f"{args.dir}: Euler angles already unwrapped; nothing changed")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dataset", help="check, summarise and convert episode datasets (LeRobot v3)")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    c = sub.add_parser("check", help="report problems episode by episode (exit 1 if any)")
    c.add_argument("dir", help="LeRobot v3 dataset directory")
    c.add_argument(
        "--full",
        action="store_true",
        help="also decode every video frame (slow); recorded checksums are always verified",
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_check)
    i = sub.add_parser("info", help="summarise a dataset: episodes, frames, tasks, cameras, image size, fps")
    i.add_argument("dir")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)
    v = sub.add_parser(
        "convert",
        help="convert an RLBench / DROID / Bridge layout, or your robot's LeRobot data, to our LeRobot v3",
        description="Your own robot's LeRobot dataset: give the pose source (--pose-column, or "
        "--joints-column with --mjcf), --gripper-column and --calibration (docs/DEPLOY.md).",
    )
    v.add_argument("src", help="source directory")
    v.add_argument(
        "dst",
        help="output LeRobot v3 directory (appended to if it exists; episodes already converted are skipped)",
    )
    v.add_argument(
        "--kind",
        choices=["rlbench", "droid", "bridge", "lerobot", "robot"],
        default=None,
        help="default: detect (robot: when a pose source is given)",
    )
    v.add_argument(
        "--limit", type=int, default=None, help="convert only the first N source episodes (N >= 0)"
    )
    v.add_argument("--robot-type", default="panda")
    v.add_argument(
        "--fps",
        type=float_above(0),
        default=None,
        help="the source's frame rate in Hz, where it records none or a wrong one (default: the "
        "source's own; RLBench 5: every 4th step of its 20 Hz demos)",
    )
    r = v.add_argument_group("your own robot's LeRobot data (kind robot)")
    r.add_argument("--calibration", help="calibration file from actionimages calibrate: the cameras")
    r.add_argument(
        "--camera",
        action="append",
        help="KEY=NAME: LeRobot video KEY (observation.images.X) is calibration camera NAME (repeatable; "
        "default: every video by its own name)",
    )
    r.add_argument(
        "--pose-column", help="end-effector pose column, e.g. observation.ee_pose or observation.state[0:6]"
    )
    r.add_argument(
        "--pose-format",
        choices=["euler", "quat", "rotvec"],
        default="euler",
        help="euler: x,y,z,rx,ry,rz (SciPy extrinsic xyz, rad); quat: x,y,z,qx,qy,qz,qw; rotvec: x,y,z + "
        "axis-angle (base frame, metres)",
    )
    r.add_argument("--joints-column", help="joint positions column, e.g. observation.state[0:7] (radians)")
    r.add_argument("--mjcf", help="the robot's MJCF (world frame = robot base), or 'panda' (the sim's)")
    r.add_argument("--ee-site", help="MJCF site of the tool centre point (default tcp for panda)")
    r.add_argument("--gripper-column", help="gripper column, one value per frame, e.g. observation.state[7]")
    r.add_argument(
        "--gripper-range", default="0,1", help="CLOSED,OPEN values of the gripper column (default 0,1)"
    )
    r.add_argument("--task", default="robot", help="task name stored with each episode (default robot)")
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
    u = sub.add_parser(
        "unwrap-euler",
        help="rewrite, in place, a dataset whose action / observation.state Euler angles jump by 2*pi "
        "between frames (written before they were unwrapped along each episode)",
        description="Same rotations, each frame's angles within pi of the previous frame's; the frame "
        "data, statistics and checksums are rewritten atomically and meta/info.json records the "
        "convention. Running it again changes nothing.",
    )
    u.add_argument("dir", help="LeRobot v3 dataset directory written by actionimages")
    u.set_defaults(func=_unwrap_euler)

    def _help(_: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=_help)
