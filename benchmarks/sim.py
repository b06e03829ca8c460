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
    out["load_average_after"] = os.getloadavg()
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
