"""Benchmark of the embedded sim: control-step rate, reset time, render cost, expert success.

    .venv/bin/python benchmarks/sim.py                      # speed + expert success, 50 seeds
    .venv/bin/python benchmarks/sim.py --seeds 10 --skip-success

Prints a JSON summary (and writes it to --json if given). Timings are wall-clock on whatever
machine runs it; on a shared machine, report the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
from tqdm import tqdm

from actionimages.sim import DEFAULT_CAMERAS, TASKS, make_env, scripted_expert


def speed(task: str, image_size: int, cameras: tuple[str, ...], steps: int, render: bool) -> dict:
    """Control steps/s under the scripted expert (rendering every step when ``render``) and reset time."""
    env = make_env(task, image_size=image_size, cameras=cameras, render=render)
    expert = scripted_expert(env)
    env.reset(seed=0)  # warm-up: GL context, first compile of the render path
    resets, step_times, n = [], [], 0
    seed = 0
    while n < steps:
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=seed)
        resets.append(time.perf_counter() - t0)
        seed += 1
        done = False
        while not done and n < steps:
            t0 = time.perf_counter()
            obs, _, term, trunc, _ = env.step(expert.act(obs))
            step_times.append(time.perf_counter() - t0)
            n += 1
            done = term or trunc
    render_ms = None
    if render:
        t0 = time.perf_counter()
        for _ in range(20):
            env.render_images()
        render_ms = (time.perf_counter() - t0) / 20 / len(cameras) * 1000
    env.close()
    return {
        "task": task,
        "image_size": image_size,
        "cameras": len(cameras) if render else 0,
        "steps_per_s": 1.0 / float(np.mean(step_times)),
        "step_ms_p50": 1000 * float(np.median(step_times)),
        "reset_ms_mean": 1000 * float(np.mean(resets)),
        "render_ms_per_camera": render_ms,
    }


def success(task: str, split: str, seeds: int) -> dict:
    """Scripted-expert success over ``seeds`` episodes, with episode length and IK statistics."""
    env = make_env(task, split=split, render=False)
    expert = scripted_expert(env)
    ok, lengths, ik_eps, ik_steps, fails = 0, [], 0, 0, []
    for seed in range(seeds):
        obs, _ = env.reset(seed=seed)
        n_ik = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for _ in range(env.max_steps):
                obs, _, term, trunc, info = env.step(expert.act(obs))
                n_ik += int(info["ik_failed"])
                if term or trunc:
                    break
        ok += int(info["success"])
        if not info["success"]:
            fails.append(seed)
        lengths.append(info["step"])
        ik_eps += int(n_ik > 0)
        ik_steps += n_ik
    return {
        "task": task,
        "split": split,
        "episodes": seeds,
        "success_rate": ok / seeds,
        "failed_seeds": fails,
        "mean_steps": float(np.mean(lengths)),
        "max_steps": env.max_steps,
        "episodes_with_ik_failure": ik_eps,
        "ik_failed_steps": ik_steps,
    }


def render_cost(sizes: list[int], repeats: int = 10) -> list[dict]:
    """Milliseconds to render one camera at each image size (pick_up_cube scene, 4 fixed cameras)."""
    out = []
    for size in sizes:
        env = make_env("pick_up_cube", image_size=size, cameras=DEFAULT_CAMERAS)
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(repeats):
            env.render_images()
        out.append({"image_size": size, "ms_per_camera": (time.perf_counter() - t0) / repeats / 4 * 1000})
        env.close()
    return out


def tracking(steps: int = 200, step_m: float = 0.04) -> dict:
    """Tool-pose error at the end of a control step, for random targets ``step_m`` away."""
    env = make_env("reach_target", render=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    home = env.home_action()
    pose = home.copy()
    pos, rot = [], []
    for _ in range(steps):
        d = rng.normal(size=3)
        pose[:3] = np.clip(pose[:3] + d / np.linalg.norm(d) * step_m, [0.3, -0.25, 0.08], [0.65, 0.25, 0.45])
        pose[3:6] = home[3:6] + rng.normal(size=3) * 0.1
        _, _, _, _, info = env.step(pose)
        pos.append(info["tracking_error"])
        rot.append(info["tracking_rot_error"])
    return {
        "step_m": step_m,
        "pos_err_mm_mean": 1000 * float(np.mean(pos)),
        "pos_err_mm_max": 1000 * float(np.max(pos)),
        "rot_err_deg_mean": float(np.rad2deg(np.mean(rot))),
        "rot_err_deg_max": float(np.rad2deg(np.max(rot))),
    }


def calibration(seeds: int = 10) -> dict:
    """Pixel distance between each target sphere's projected centre (returned Camera) and the centroid
    of its pixels in a segmentation render, over fixed cameras of train and heldout_cameras."""
    errs = []
    for split in ("train", "heldout_cameras"):
        env = make_env("reach_target", split=split, image_size=128, render=False)
        for seed in range(seeds):
            obs, _ = env.reset(seed=seed)
            for name, cam in env.cameras().items():
                seg = env.renderer.render_geom_ids(env.data, name)
                for i in range(3):
                    gid = int(np.flatnonzero(env.model.geom_bodyid == env.body_id(f"sphere{i}"))[0])
                    mask = seg == gid
                    if mask.sum() < 15 or mask[[0, -1]].any() or mask[:, [0, -1]].any():
                        continue
                    vs, us = np.nonzero(mask)
                    uv, depth = cam.project(env.data.geom_xpos[gid])
                    if mask.sum() < 0.85 * np.pi * (cam.K[0, 0] * env.model.geom_size[gid][0] / depth) ** 2:
                        continue  # partly hidden by the arm: its centroid is biased
                    errs.append(float(np.hypot(us.mean() - uv[0], vs.mean() - uv[1])))
        env.close()
    return {"n": len(errs), "px_mean": float(np.mean(errs)), "px_max": float(np.max(errs))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--splits", default="train,heldout")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--speed-steps", type=int, default=150)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--skip-success", action="store_true")
    ap.add_argument("--json", default=None, help="also write the summary here")
    a = ap.parse_args()
    tasks = [t for t in a.tasks.split(",") if t]
    out: dict = {"load_average_before": os.getloadavg(), "speed": [], "success": []}
    for task in tqdm(tasks, desc="speed"):
        out["speed"].append(speed(task, a.image_size, DEFAULT_CAMERAS, a.speed_steps, render=True))
        out["speed"].append(speed(task, a.image_size, DEFAULT_CAMERAS, a.speed_steps, render=False))
    if not a.skip_success:
        jobs = [(t, s) for s in a.splits.split(",") if s for t in tasks]
        for task, split in tqdm(jobs, desc="expert success"):
            out["success"].append(success(task, split, a.seeds))
    out["render_cost"] = render_cost([64, 128, 256, 512])
    out["tracking"] = tracking()
    out["calibration"] = calibration()
    out["load_average_after"] = os.getloadavg()
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
