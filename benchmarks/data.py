"""Throughput of the training-sample pipeline: episodes on disk -> SampleBuilder -> DataLoader.

Writes a small synthetic LeRobot-v3 dataset (three 256² or other-sized cameras, 80-frame
episodes), then measures

- the single-process cost of one sample, split into video decode, crop/resize, action images
  (codec) and Plücker maps;
- samples/s through ``DataLoader(ClipDataset(...), num_workers=W)`` at 2 views × 41 frames × 256²;
- dataset write speed (episodes/s, frames/s) and the video size on disk.

    .venv/bin/python benchmarks/data.py --out docs/results/data_bench       # writes .json and .md
    .venv/bin/python benchmarks/data.py --quick                             # a smaller, faster run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from actionimages.codec import ActionImageCodec
from actionimages.data import ClipDataset, DatasetReader, DatasetWriter, SampleBuilder, collate
from actionimages.data.sample import crop_resize_frames
from actionimages.data.synthetic import make_synthetic_episode
from actionimages.data.video import decode_frames, encode_video


def write_dataset(root: Path, episodes: int, T: int, size: tuple[int, int]) -> dict:
    eps = [
        make_synthetic_episode(T=T, width=size[0], height=size[1], seed=s, cameras=("front", "side", "top"))
        for s in range(episodes)
    ]
    t0 = time.perf_counter()
    with DatasetWriter(root, fps=10) as w:
        for ep in eps:
            w.add_episode(ep)
    dt = time.perf_counter() - t0
    mp4 = sum(p.stat().st_size for p in root.rglob("*.mp4"))
    raw = episodes * T * 3 * size[0] * size[1] * 3
    return {
        "episodes_per_s": episodes / dt,
        "frames_per_s": episodes * T / dt,
        "video_bytes": mp4,
        "compression_ratio": raw / mp4,
    }


def breakdown(reader: DatasetReader, builder: SampleBuilder, reps: int) -> dict:
    """Median seconds of each stage for one sample (one process, one thread)."""
    F, H, W = builder.num_frames, builder.height, builder.width
    ep = reader.episode(0)
    idx = np.arange(F) * builder.stride
    keys = ("decode", "resize", "codec", "plucker", "total", "total_cpu")
    stages: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(reps):
        t0 = time.perf_counter()
        frames = [np.asarray(ep.frames[c][idx]) for c in ("front", "side")]
        t1 = time.perf_counter()
        for f in frames:
            crop_resize_frames(f, W, H)
        t2 = time.perf_counter()
        cams = [ep.cameras[c].crop_resize(W, H) for c in ("front", "side")]
        ActionImageCodec(cams).encode(ep.actions[idx])
        t3 = time.perf_counter()
        for c in cams:
            c.plucker(cams[0])
        t4 = time.perf_counter()
        c4 = time.process_time()  # CPU time: robust to other jobs on a shared machine
        builder(ep, rng=np.random.default_rng(r))
        t5, c5 = time.perf_counter(), time.process_time()
        for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, c5 - c4), strict=True):
            stages[k].append(dt)
    return {k: float(np.median(v)) for k, v in stages.items()}


def loader_rate(
    reader: DatasetReader, builder: SampleBuilder, workers: int, samples: int, batch: int
) -> dict:
    ds = ClipDataset(reader, builder, samples_per_epoch=samples, seed=0)
    loader = DataLoader(
        ds, batch_size=batch, num_workers=workers, collate_fn=collate, persistent_workers=False
    )
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter() - t0
    n = first["rgb"].shape[0]
    t1 = time.perf_counter()
    for b in it:
        n += b["rgb"].shape[0]
    steady = (n - first["rgb"].shape[0]) / max(time.perf_counter() - t1, 1e-9)
    return {"workers": workers, "samples": n, "first_batch_s": t_first, "samples_per_s": steady}


def sim_frames(task: str, steps: int, size: int) -> dict[str, np.ndarray]:
    """Frames of every camera of a scripted-expert rollout in the embedded simulator."""
    from actionimages.sim import make_env, scripted_expert

    env = make_env(task, image_size=size, seed=0)
    obs, _ = env.reset(seed=0)
    expert = scripted_expert(env)
    frames: dict[str, list[np.ndarray]] = {k: [] for k in obs["images"]}
    for _ in range(steps):
        for k in frames:
            frames[k].append(obs["images"][k])
        obs, *_ = env.step(expert.act(obs))
    env.close()
    return {k: np.stack(v) for k, v in frames.items()}


def video_fidelity(frames: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Round-trip error and size of the encoding settings (ours: yuv444p CRF 15)."""
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="ai-fid-"))
    try:
        settings = [
            ("libx264", "yuv444p", 15),
            ("libx264", "yuv444p", 18),
            ("libx264", "yuv420p", 15),
            ("libx264", "yuv420p", 23),
            ("libx264rgb", "rgb24", 0),  # lossless RGB
        ]
        for codec, pix_fmt, crf in settings:
            errs, size, n, t_enc, t_dec = [], 0, 0, 0.0, 0.0
            for v in frames.values():
                path = tmp / "v.mp4"
                t0 = time.perf_counter()
                encode_video(path, v, 10.0, codec=codec, pix_fmt=pix_fmt, crf=crf)
                t1 = time.perf_counter()
                d = decode_frames(path, np.arange(len(v)), 10.0)
                t_enc, t_dec = t_enc + t1 - t0, t_dec + time.perf_counter() - t1
                size += path.stat().st_size
                n += len(v)
                e = d.astype(np.float64) - v
                errs.append(
                    (np.abs(e).mean(), 10 * np.log10(255**2 / max(np.mean(e**2), 1e-12)), np.abs(e).max())
                )
            mae, psnr, worst = np.mean(errs, 0)
            out[f"{codec} {pix_fmt} crf{crf}"] = {
                "mae": float(mae),
                "psnr_db": float(min(psnr, 99.0)),
                "max_abs": float(worst),
                "kB_per_frame": size / 1024 / n,
                "encode_frames_per_s": n / t_enc,
                "decode_frames_per_s": n / t_dec,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resize_costs(reps: int = 3) -> dict[str, float]:
    """Median seconds to crop+resize 41 frames of one view to 256² from common source sizes."""
    out = {}
    rng = np.random.default_rng(0)
    for w, h in [(320, 240), (128, 128), (640, 480)]:
        frames = rng.integers(0, 255, (41, h, w, 3), dtype=np.uint8)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            crop_resize_frames(frames, 256, 256)
            ts.append(time.perf_counter() - t0)
        out[f"{w}x{h}"] = float(np.median(ts))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples (for a shared machine)")
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    p.add_argument("--source-size", type=int, nargs=2, default=[256, 256], metavar=("W", "H"))
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument(
        "--fidelity-sim", default=None, metavar="TASK", help="measure video fidelity on sim frames"
    )
    p.add_argument("--fidelity-only", action="store_true", help="only the video round-trip table")
    p.add_argument("--resize-only", action="store_true", help="only time crop+resize from other sizes")
    args = p.parse_args()
    torch.set_num_threads(1)  # what a loader worker gets
    if args.fidelity_only:
        frames = sim_frames(args.fidelity_sim, 40, 256) if args.fidelity_sim else None
        if frames is None:
            frames = dict(
                make_synthetic_episode(T=40, width=256, height=256, cameras=("front", "side")).frames
            )
        print(json.dumps({"video_fidelity": video_fidelity(frames)}, indent=2))
        return
    if args.resize_only:
        print(json.dumps({"resize_41_frames_to_256_seconds": resize_costs()}, indent=2))
        return
    samples = 12 if args.quick else 40
    tmp = Path(tempfile.mkdtemp(prefix="ai-data-bench-"))
    try:
        write = write_dataset(tmp / "d", episodes=4 if args.quick else 8, T=80, size=tuple(args.source_size))
        reader = DatasetReader(tmp / "d")
        builder = SampleBuilder(num_frames=41, stride=1, num_views=2, height=256, width=256, training=True)
        stages = breakdown(reader, builder, reps=2 if args.quick else 4)
        rates = [loader_rate(reader, builder, w, samples, batch=2) for w in args.workers]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.fidelity_sim:
        fid_frames = sim_frames(args.fidelity_sim, steps=40, size=256)
        fid_src = f"sim task {args.fidelity_sim}, 40 steps x {len(fid_frames)} cameras, 256x256"
    else:
        ep = make_synthetic_episode(T=40, width=256, height=256, cameras=("front", "side"))
        fid_frames, fid_src = dict(ep.frames), "synthetic ball scene, 40 frames x 2 cameras, 256x256"
    fidelity = video_fidelity(fid_frames)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
        f"{torch.get_num_threads()} torch thread per process",
        "source_size": args.source_size,
        "sample": "2 views x 41 frames x 256x256, stride 1",
        "write": write,
        "stage_seconds": stages,
        "loader": rates,
        "video_fidelity_source": fid_src,
        "video_fidelity": fidelity,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        lines = [
            "| stage (one sample, 1 thread) | seconds |",
            "|---|---|",
            *[f"| {k} | {v:.3f} |" for k, v in stages.items()],
            "",
            "| loader workers | samples/s | first batch (s) |",
            "|---|---|---|",
            *[f"| {r['workers']} | {r['samples_per_s']:.2f} | {r['first_batch_s']:.2f} |" for r in rates],
            "",
            f"Video round trip ({fid_src}):",
            "",
            "| encoding | MAE (grey levels) | max error | PSNR (dB) | kB/frame | encode fps | decode fps |",
            "|---|---|---|---|---|---|---|",
            *[
                f"| {k} | {v['mae']:.2f} | {v['max_abs']:.0f} | {v['psnr_db']:.1f} | "
                f"{v['kB_per_frame']:.2f} | {v['encode_frames_per_s']:.0f} | {v['decode_frames_per_s']:.0f} |"
                for k, v in fidelity.items()
            ],
        ]
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
