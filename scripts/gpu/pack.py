"""Pack a dataset's episodes (chosen cameras) into one compressed .npz, for a machine without PyAV.

The device machine that trains on a GPU has no video decoder for our mp4s and takes at most 64 MiB
of files, so the frames travel decoded and deflated; ``scripts/gpu/train.py`` reads them back as
in-memory :class:`~actionimages.data.Episode` objects. No pickle: arrays plus one JSON string.

    python scripts/gpu/pack.py DATA OUT.npz [--cameras front,left_shoulder] [--max-episodes N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actionimages.atomic import atomic_path
from actionimages.data import open_source


def _cam(spec):
    return [c.to_dict() for c in spec] if isinstance(spec, list | tuple) else spec.to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--cameras", default="front,left_shoulder")
    ap.add_argument("--max-episodes", type=int, default=None)
    ap.add_argument("--task", default=None, help="keep only this task's episodes")
    args = ap.parse_args()
    cams = args.cameras.split(",")
    src = open_source(args.data)
    n = len(src) if args.max_episodes is None else min(len(src), args.max_episodes)
    kept = 0
    frames = {c: [] for c in cams}
    actions, state, offsets, meta = [], [], [0], []
    for i in tqdm(range(len(src)), desc="packing", unit="ep"):
        if kept >= n:
            break
        ep = src.episode(i)  # lazy: no frame is decoded before the task check
        if args.task and ep.task != args.task:
            continue
        kept += 1
        T = len(ep.actions)
        for c in cams:
            frames[c].append(np.asarray(ep.frames[c][:T], dtype=np.uint8))
        actions.append(np.asarray(ep.actions, np.float64))
        st = ep.state if ep.state is not None else ep.actions
        state.append(np.asarray(st, np.float64)[:, :7])
        offsets.append(offsets[-1] + T)
        meta.append(
            {
                "instruction": ep.instruction,
                "task": ep.task,
                "fps": ep.fps,
                "info": ep.info,
                "has_actions": bool(ep.has_actions),
                "cameras": {c: _cam(ep.cameras[c]) for c in cams},  # Camera.to_dict(); read with from_dict
            }
        )
    arrays = {f"frames_{c}": np.concatenate(frames[c]) for c in cams}
    out = Path(args.out)
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            actions=np.concatenate(actions),
            state=np.concatenate(state),
            offsets=np.asarray(offsets, np.int64),
            meta=np.asarray(json.dumps({"cameras": cams, "episodes": meta})),
            **arrays,
        )
    print(f"{kept} episodes, {offsets[-1]} frames -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
