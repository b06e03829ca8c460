"""The two halves of ``scripts/check_lerobot_interop.sh`` (run by two interpreters).

``ours DS OUT.npz``      (our environment)     what our reader says: a frame per camera, rows.
``lerobot DS OURS.npz EDIT OUT.json`` (LeRobot's) load DS with ``LeRobotDataset``, compare, run
                                                  LeRobot's editing tools into EDIT/<tool>.
``reload DIR``           (LeRobot's)            LeRobot still loads DIR (after our restore).

Neither half imports the other's package, so each runs with only its own dependencies.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

EPISODE, FRAME = 1, 3  # the frame compared: episode 1 (so its global index is not its frame index)
ROWS = ("action", "observation.state", "action.rot6d", "observation.state.rot6d")
EXT = "actionimages/"


def ours(ds: str, out: str) -> int:
    """Write our reader's view of episode EPISODE, frame FRAME to ``out`` (npz)."""
    from actionimages.data import DatasetReader

    r = DatasetReader(ds)
    arrays = r.arrays(EPISODE)
    row = r.meta(EPISODE)
    data: dict[str, Any] = {
        "index": np.int64(row["dataset_from_index"] + FRAME),
        "instruction": np.str_(r.episode(EPISODE).instruction),
    }
    for key in ROWS:
        data["row/" + key] = arrays[key][FRAME].astype(np.float32)  # stored as float32
    for cam in r.cameras:
        data["frame/" + cam] = r.frames(EPISODE, cam, [FRAME])[0]
    np.savez(out, **data)
    print(f"ours: episode {EPISODE} frame {FRAME} (index {int(data['index'])}), cameras {r.cameras}")
    return 0


def _tolerant_torchvision() -> str:
    """Import torchvision even where its compiled ops cannot load (a PyPI CUDA build beside a CPU
    torch): its fake-op registrations then fail, and LeRobot's dataset code needs none of the ops."""
    import torch.library as L

    orig = L.register_fake

    def tolerant(op: Any, fn: Any = None, /, **kw: Any) -> Any:
        def deco(f: Any) -> Any:
            try:
                return orig(op, **kw)(f)
            except RuntimeError:  # "operator torchvision::nms does not exist"
                return f

        return deco if fn is None else deco(fn)

    L.register_fake = tolerant
    try:
        import torchvision
        from torchvision import extension
    finally:
        L.register_fake = orig
    ops = "compiled ops loaded" if extension._has_ops() else "compiled ops NOT loadable (not needed here)"
    return f"torchvision {torchvision.__version__}: {ops}"


def _standin_decoder(
    video_path: Any, timestamps: list[float], tolerance_s: float, backend: Any = None
) -> Any:
    """LeRobot's decoding contract (nearest frame to each timestamp, within ``tolerance_s``, float32
    (N, 3, H, W) in [0, 1]) with PyAV directly: used only where LeRobot's own decoders cannot run."""
    import av
    import torch

    with av.open(str(video_path)) as c:
        stream = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(stream):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * stream.time_base))
    times_a = np.asarray(times)
    out = []
    for ts in timestamps:
        k = int(np.argmin(np.abs(times_a - ts)))
        if abs(times_a[k] - ts) > tolerance_s:
            raise AssertionError(f"no frame within {tolerance_s} s of {ts} s in {video_path}")
        out.append(frames[k])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def lerobot(ds: str, ours_npz: str, edit: str, out: str) -> int:
    """Load ``ds`` with LeRobot, compare with ``ours_npz``, run LeRobot's editing tools into ``edit``."""
    import importlib.metadata as md

    results: dict[str, Any] = {"checks": {}, "notes": []}
    checks = results["checks"]
    results["notes"].append(_tolerant_torchvision())
    import torch
    from lerobot.datasets import lerobot_dataset as lds
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    results["versions"] = {"lerobot": md.version("lerobot"), "torch": torch.__version__}
    ref = np.load(ours_npz)
    dataset = LeRobotDataset("local/interop", root=ds)
    idx = int(ref["index"])
    checks["load"] = {"ok": True, "detail": f"{dataset.num_episodes} episodes, {len(dataset)} frames"}
    try:
        item, decoder = dataset[idx], f"LeRobot's own ({dataset.video_backend})"
    except Exception as exc:  # LeRobot's decoder cannot run here: say why, use the stand-in
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        results["notes"].append(f"LeRobot's video decoder ({dataset.video_backend}) failed: {why}")
        lds.decode_video_frames = _standin_decoder
        item, decoder = dataset[idx], "PyAV stand-in for LeRobot's decoder (LeRobot's path and timestamps)"
    results["decoder"] = decoder
    for key in ROWS:
        got = item[key].numpy().astype(np.float32)
        want = ref["row/" + key]
        checks[key] = {
            "ok": bool(np.array_equal(got, want)),
            "detail": f"lerobot {got.tolist()} ours {want.tolist()}",
        }
    checks["task"] = {"ok": item["task"] == str(ref["instruction"]), "detail": item["task"]}
    checks["episode/frame"] = {
        "ok": int(item["episode_index"]) == EPISODE and int(item["frame_index"]) == 3,
        "detail": f"episode {int(item['episode_index'])} frame {int(item['frame_index'])}",
    }
    for name in ref.files:
        if name.startswith("frame/"):
            key = "observation.images." + name[len("frame/") :]
            got = (item[key].permute(1, 2, 0).numpy() * 255.0).round().astype(int)
            diff = np.abs(got - ref[name].astype(int))
            checks[key] = {
                "ok": got.shape == ref[name].shape and diff.mean() < 1.0,
                "detail": f"{decoder}: mean |diff| {diff.mean():.3f}, max {diff.max()} grey levels",
            }
    calib = dataset.meta.episodes[EPISODE][EXT + "calibration"]
    checks["calibration column"] = {
        "ok": isinstance(json.loads(calib), dict),
        "detail": f"{len(calib)} chars",
    }
    stats = dataset.meta.stats
    checks["rot6d stats"] = {
        "ok": all(k in stats for k in ROWS),
        "detail": f"Euler rx std {float(stats['action']['std'][3]):.3f}, "
        f"action.rot6d max std {float(np.max(stats['action.rot6d']['std'])):.3f}",
    }
    results["edits"] = _edits(dataset, Path(edit))
    for check in checks.values():
        check["ok"] = bool(check["ok"])  # (numpy booleans)
    Path(out).write_text(json.dumps(results, indent=2))
    return 0


def _edits(dataset: Any, edit: Path) -> dict[str, Any]:
    """Run LeRobot's editing tools; which of our columns / files / features survive each."""
    import pyarrow.parquet as pq
    from lerobot.datasets import dataset_tools as dt

    def survived(root: Path) -> dict[str, Any]:
        names: set[str] = set()
        for p in sorted((root / "meta/episodes").rglob("*.parquet")):
            names |= set(pq.read_schema(p).names)
        info = json.loads((root / "meta/info.json").read_text())
        feats = info["features"]
        return {
            "columns": sorted(n for n in names if n.startswith(EXT)),
            "info field": info.get("actionimages"),  # {"euler_angles": "unwrapped"} (lerobot.euler)
            "checksums": (root / "meta/actionimages_checksums.json").exists(),
            "rot6d features": sorted(k for k in feats if k.endswith(".rot6d")),
        }

    runs = {
        "delete_episodes": lambda: dt.delete_episodes(dataset, [0], output_dir=edit / "delete_episodes"),
        "split_dataset": lambda: dt.split_dataset(dataset, {"a": [1]}, output_dir=edit / "split_dataset"),
        "merge_datasets": lambda: dt.merge_datasets(
            [dataset, dataset], output_repo_id="local/merged", output_dir=edit / "merge_datasets"
        ),
        "remove_feature": lambda: dt.remove_feature(
            dataset, "observation.state.rot6d", output_dir=edit / "remove_feature"
        ),
    }
    out: dict[str, Any] = {}
    for name, run in runs.items():
        try:
            run()
            root = edit / name / "a" if name == "split_dataset" else edit / name
            out[name] = {"dir": str(root), **survived(root)}
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3)}
    return out


def reload(root: str) -> int:
    """LeRobot loads ``root`` (restored by us) and reads its calibration column."""
    _tolerant_torchvision()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("local/restored", root=root)
    calib = json.loads(dataset.meta.episodes[0][EXT + "calibration"])
    print(f"reload {root}: {dataset.num_episodes} episodes, calibrated cameras {sorted(calib)}")
    return 0


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    sys.exit({"ours": ours, "lerobot": lerobot, "reload": reload}[mode](*args))
