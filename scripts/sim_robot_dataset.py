"""Record scripted-expert episodes in the sim and write them as a robot's own LeRobot recording.

The dataset holds what a real robot's LeRobot recording holds: videos, ``observation.state`` =
7 arm joint angles (rad) + 2 finger positions (m, 0..0.04 each), ``action`` = the next frame's
joints, the instruction; no end-effector pose and no camera calibration. ``--truth FILE`` also
saves the sim's true tool poses (``episode_<i>``: (T, 7)) to compare an import against. It is the
input of the worked example in docs/DEPLOY.md (``dataset convert --joints-column ...``)::

    python scripts/sim_robot_dataset.py --task reach_target --episodes 3 --out robot_lerobot
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import numpy as np

from actionimages.atomic import write_bytes_atomic
from actionimages.data.fixtures import write_robot_lerobot
from actionimages.errors import ActionImagesError
from actionimages.sim import DEFAULT_CAMERAS, TASKS
from actionimages.sim.rollout import record_many


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="reach_target", choices=list(TASKS))
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--cameras", default=",".join(DEFAULT_CAMERAS), help="comma-separated fixed cameras")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", required=True, help="LeRobot dataset directory to create")
    p.add_argument("--truth", help="npz of the true tool poses per episode")
    args = p.parse_args(argv)
    try:
        cams = tuple(c for c in args.cameras.split(",") if c)
        jobs = [(args.task, args.seed + k) for k in range(args.episodes)]
        recs = list(record_many(jobs, image_size=args.image_size, cameras=cams, workers=args.workers))
        episodes = [
            {"frames": r.frames, "joints": r.joints, "instruction": r.instruction, "fps": r.fps} for r in recs
        ]
        write_robot_lerobot(args.out, episodes)
        if args.truth:
            buf = io.BytesIO()
            np.savez(buf, **{f"episode_{i}": r.state for i, r in enumerate(recs)})
            write_bytes_atomic(args.truth, buf.getvalue())
    except ActionImagesError as exc:
        print(f"sim_robot_dataset: error: {exc}", file=sys.stderr)
        return 2
    summary = {
        "out": args.out,
        "episodes": len(recs),
        "frames": [len(r.joints) for r in recs],
        "success": [r.success for r in recs],
        "cameras": list(cams),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
