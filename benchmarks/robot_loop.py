"""The robot loop at the real control rate, in sim: blocking against prefetching execution (issue 25).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/robot_loop.py [--checkpoint checkpoints/tiny]
        [--task close_drawer] [--episodes 10] [--num-steps 8] [--out docs/results/robot_loop.json]

A policy server (a thread of this process, as `actionimages serve`) serves the checkpoint; the
client drives the sim as it would a robot: one ``act`` per control step of 1 / ``control_hz``
seconds on the wall clock. A real robot does not stop time while it waits for a plan: it holds its
last target. So every control period the blocking loop spends waiting becomes one sim step that
holds the last target (what the robot does meanwhile), and the episode's step budget runs on. The
prefetching loop (``WebsocketPolicy(prefetch=True)``) asks for the next plan while the current
chunk runs and drops the poses whose time passed; a third loop also blends overlapping plans
(``ensemble=0.5``). Every loop sees the same episodes (seeds).

Reports per loop: success, steps, steps spent holding, dropped poses, the client's round trip and
the server's share of it, and the smoothness of the motion: the largest joint-space jerk (third
difference of the arm's joint positions / dt^3, rad/s^3) and the largest target step (mm).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _episode(client, env, seed: int, prefetch: bool, dt: float) -> dict:
    from actionimages.eval.runner import episode_seed

    sim = env.unwrapped
    ep_seed = episode_seed(0, sim.task_name, sim.split, seed)
    obs, _ = env.reset(seed=ep_seed)
    client.reset(episode_id=f"{'p' if prefetch else 'b'}{seed}", seed=ep_seed, base_seed=0)
    cams = {n: {"K": c["K"], "cam_to_world": c["cam_to_world"]} for n, c in obs["cameras"].items()}
    joints, targets, latency = [], [], []
    last = np.asarray(obs["ee_pose"], dtype=np.float64)[:7]
    state = {"obs": obs, "done": False, "success": False, "holds": 0}

    def step(pose: np.ndarray) -> None:
        state["obs"], _, success, truncated, _ = env.step(pose)
        state["done"], state["success"] = bool(success or truncated), bool(success)
        joints.append(sim.data.qpos[sim.kin.qpos_idx].copy())
        targets.append(np.asarray(pose, dtype=np.float64))

    while not state["done"]:
        t0 = time.perf_counter()
        before = client.last
        o = state["obs"]
        target = client.act(o["images"], cams, o["ee_pose"], o["instruction"])
        waited = time.perf_counter() - t0
        if client.last is not before:  # a new plan arrived during this step
            latency.append({**client.timing, "server": float(client.last["timing"].get("total", np.nan))})
        for _ in range(int(waited // dt)):  # the periods spent waiting: the robot held its target
            step(last)
            state["holds"] += 1
            if state["done"]:
                break
        if state["done"]:
            break
        step(target)
        last = np.asarray(target, dtype=np.float64)
        time.sleep(max(0.0, dt - (time.perf_counter() - t0) % dt))  # the next control tick
    q = np.asarray(joints)
    jerk = np.abs(np.diff(q, n=3, axis=0)).max() / dt**3 if len(q) > 3 else 0.0
    step_mm = np.linalg.norm(np.diff(np.asarray(targets)[:, :3], axis=0), axis=1).max() * 1000
    return {
        "success": state["success"],
        "steps": len(joints),
        "holds": state["holds"],
        "max_jerk_rad_s3": float(jerk),
        "max_target_step_mm": float(step_mm),
        "latency": latency,
    }


def _summary(eps: list[dict], client) -> dict:
    lat = [x for e in eps for x in e["latency"]]

    def ms(key: str) -> float | None:
        vals = [x[key] for x in lat if np.isfinite(x.get(key, np.nan))]
        return round(float(np.median(vals)) * 1000, 1) if vals else None

    return {
        "success": f"{sum(e['success'] for e in eps)}/{len(eps)}",
        "steps_median": float(np.median([e["steps"] for e in eps])),
        "holds_per_episode_median": float(np.median([e["holds"] for e in eps])),
        "max_jerk_median_rad_s3": round(float(np.median([e["max_jerk_rad_s3"] for e in eps])), 1),
        "max_target_step_median_mm": round(float(np.median([e["max_target_step_mm"] for e in eps])), 1),
        "latency_median_ms": {
            "client_pack": ms("pack"),
            "round_trip": ms("round_trip"),
            "server": ms("server"),
            "wire": round(ms("round_trip") - ms("server"), 1) if lat else None,
            "client_unpack": ms("unpack"),
        },
        "dropped_poses": client.dropped,
        "waits": client.waits,
    }


def _timed(client, request: dict) -> float:
    t0 = time.perf_counter()
    client.infer(request)
    return time.perf_counter() - t0


LOOPS = {  # the client options of each loop compared
    "blocking": {},
    "prefetch": {"prefetch": True},
    "prefetch+ensemble": {"prefetch": True, "ensemble": 0.5},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/tiny")
    ap.add_argument("--task", default="close_drawer")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--num-steps", type=int, default=8)
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch
    from actionimages_client import WebsocketPolicy

    from actionimages.model import load_model
    from actionimages.serve import PolicyServer
    from actionimages.sim import make_env

    torch.set_num_threads(1)
    server = PolicyServer(load_model(args.checkpoint), port=0, num_steps=args.num_steps, seed=0)
    _, stop = server.run_in_thread()
    dt = 1.0 / float(server.metadata["control_hz"])
    result: dict = {"checkpoint": args.checkpoint, "task": args.task, "control_hz": 1 / dt, "loops": {}}
    env = make_env(args.task, split="test", seed=0, image_size=int(server.image_size[0]))
    try:
        # the prefetching loops ask when as many targets are left as a plan takes control steps
        probe = WebsocketPolicy("127.0.0.1", server.port, workspace=None)
        obs, _ = env.reset(seed=0)
        cams = {n: {"K": c["K"], "cam_to_world": c["cam_to_world"]} for n, c in obs["cameras"].items()}
        request = probe.request(obs["images"], cams, obs["ee_pose"], obs["instruction"])
        latency = float(np.median([_timed(probe, request) for _ in range(5)]))
        probe.close()
        k = int(server.metadata["default_execute"])
        ahead = max(1, min(k, int(np.ceil(latency / dt))))
        result["plan_latency_median_s"], result["prefetch_at"] = round(latency, 3), ahead
        for name, options in LOOPS.items():
            if options.get("prefetch"):
                options = {**options, "prefetch_at": ahead}
            client = WebsocketPolicy("127.0.0.1", server.port, workspace=None, **options)
            eps = [_episode(client, env, i, client.prefetch, dt) for i in range(args.episodes)]
            result["loops"][name] = _summary(eps, client)
            client.close()
    finally:
        env.close()
        stop()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
