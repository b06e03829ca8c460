"""``actionimages collect``: scripted-expert demonstrations from the embedded sim into a dataset.

Episodes are recorded in parallel processes and written in seed order by
:class:`actionimages.data.DatasetWriter`. Only successful episodes are kept unless
``--keep-failed``; failed seeds are replaced by further seeds (at most ``--max-attempts`` × N).
Each episode is keyed by task, split and seed: a seed already in the dataset is not recorded
again but counts as kept, so re-running the same command adds only what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from actionimages.cli.ranges import COUNT, NONNEGATIVE, WORKERS, float_at_least
from actionimages.errors import ActionImagesError


def _episode(rec, calibration=None):
    """The dataset episode of a record; ``calibration`` ``{camera: Camera}`` replaces the sim's truth."""
    from actionimages.data import Episode

    return Episode(
        frames=rec.frames,
        cameras=dict(rec.cameras, **(calibration or {})),
        actions=rec.actions,
        state=rec.state,
        instruction=rec.instruction,
        task=rec.task,
        fps=rec.fps,
        info=rec.info,
    )


def episode_key(task: str, split: str, seed: int) -> str:
    """The dataset key of a collected episode: what makes re-running ``collect`` idempotent."""
    return f"sim:{task}/{split}/seed{int(seed)}"


def file_calibration(path: str, cameras: tuple[str, ...], image_size: int) -> dict:
    """``{camera: Camera}`` for every recorded camera from a calibration file, at the recorded size.

    Recording an estimated calibration (e.g. ``calibrate extrinsics`` on the sim's renders) instead
    of the sim's truth lets one measure what calibration error costs a policy. A camera the file lacks
    is an error naming it: the wrist camera moves with the hand, so no fixed calibration holds it.
    """
    from actionimages.calibrate.files import camera_for_image, load_calibration

    calib = load_calibration(path, cameras)
    return {
        c: camera_for_image(cam, image_size, image_size, f"camera {c!r} of {path}")
        for c, cam in calib.items()
    }


def run(args: argparse.Namespace) -> int:
    from actionimages.data import DatasetWriter
    from actionimages.sim import ALL_CAMERAS, DEFAULT_CAMERAS, SPLITS, TASKS
    from actionimages.sim.env import CONTROL_DT, MAX_IMAGE, MIN_IMAGE
    from actionimages.sim.rollout import record_many

    tasks = []
    for t in args.task or []:
        tasks += list(TASKS) if t == "all" else [x.strip() for x in t.split(",") if x.strip()]
    if not tasks:
        raise ActionImagesError(f"give at least one --task (or 'all'); tasks: {list(TASKS)}")
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ActionImagesError(f"unknown task(s) {bad}; valid tasks: {list(TASKS)}")
    if args.split not in SPLITS:
        raise ActionImagesError(f"unknown split {args.split!r}; valid splits: {list(SPLITS)}")
    cameras = (
        tuple(c.strip() for c in args.cameras.split(",") if c.strip()) if args.cameras else DEFAULT_CAMERAS
    )
    unknown = [c for c in cameras if c not in ALL_CAMERAS]
    if unknown or not cameras:
        raise ActionImagesError(f"unknown cameras {unknown or cameras}; valid cameras: {list(ALL_CAMERAS)}")
    if not MIN_IMAGE <= args.image_size <= MAX_IMAGE:  # checked here, not by the workers: nothing written
        raise ActionImagesError(f"--image-size must be in [{MIN_IMAGE}, {MAX_IMAGE}], got {args.image_size}")
    calibration = file_calibration(args.calibration, cameras, args.image_size) if args.calibration else None

    n = args.episodes
    kept = {t: 0 for t in tasks}
    skipped = {t: 0 for t in tasks}
    failed = {t: [] for t in tasks}
    next_seed = {t: args.seed for t in tasks}
    budget = {t: n if args.keep_failed else max(n, int(args.max_attempts * n)) for t in tasks}
    out = Path(args.out)
    # (--episodes, --workers and --seed were range-checked by the parser: nothing is written for nonsense)
    with DatasetWriter(out, fps=1.0 / CONTROL_DT, robot_type="panda") as writer:
        # the bar starts once the dataset is open: an unwritable --out gives its one error line alone
        bar = tqdm(total=n * len(tasks), desc=f"collect {args.split}", unit="ep", disable=args.quiet)
        while True:
            jobs = []
            for t in tasks:  # top up each task with fresh seeds for its missing episodes
                queued = 0
                while kept[t] + queued < n and budget[t] > 0:
                    seed = next_seed[t]
                    next_seed[t] += 1
                    budget[t] -= 1
                    if episode_key(t, args.split, seed) in writer.keys:  # written by an earlier run
                        kept[t] += 1
                        skipped[t] += 1
                        bar.update(1)
                    else:
                        jobs.append((t, seed))
                        queued += 1
            if not jobs:
                break
            for rec in record_many(
                jobs, split=args.split, image_size=args.image_size, cameras=cameras, workers=args.workers
            ):
                if not rec.success:
                    failed[rec.task].append(rec.info["seed"])
                    if not args.keep_failed:
                        continue
                if calibration:
                    rec.info["calibration"] = f"file {args.calibration}"  # not the sim's true cameras
                writer.add_episode(
                    _episode(rec, calibration), key=episode_key(rec.task, args.split, rec.info["seed"])
                )
                kept[rec.task] += 1
                bar.update(1)
    bar.close()
    summary = {
        "out": str(out),
        "split": args.split,
        "kept": kept,
        "failed_seeds": failed,
        "failed": sum(len(v) for v in failed.values()),
        "skipped": skipped,
    }
    if any(skipped.values()):
        print(
            f"actionimages collect: skipped {sum(skipped.values())} episode(s) already in {out} "
            f"(same task, split and seed): {skipped}",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    short = {t: n - k for t, k in kept.items() if k < n}
    if short:
        print(f"actionimages collect: expert fell short of {n} successes for {short}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect",
        help="record scripted-expert demonstrations from the embedded sim into a dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", action="append", help="task name, comma list or 'all' (repeatable)")
    p.add_argument("--episodes", type=COUNT, required=True, help="successful episodes per task")
    p.add_argument(
        "--split",
        default="train",
        help="train, test, heldout or heldout_cameras (test: train's distribution, unseen scenes)",
    )
    p.add_argument("--out", required=True, help="dataset directory (created or appended to)")
    p.add_argument("--image-size", type=COUNT, default=128, help="square image side, 64-512")
    p.add_argument(
        "--cameras", default=None, help="comma list (default: front,left_shoulder,right_shoulder,overhead)"
    )
    p.add_argument(
        "--calibration",
        help="calibration file (actionimages calibrate) to record instead of the sim's true cameras",
    )
    p.add_argument("--workers", type=WORKERS, default=2, help="parallel processes")
    p.add_argument("--seed", type=NONNEGATIVE, default=0, help="first episode seed of each task")
    p.add_argument("--keep-failed", action="store_true", help="also write episodes the expert failed")
    p.add_argument(
        "--max-attempts", type=float_at_least(1), default=2.0, help="at most this × episodes seeds per task"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
