"""Replanning latency of the action-image policy (one ``plan`` call: sample building, generation,
codec decode) on this machine, for several sampling-step counts.

    .venv/bin/python benchmarks/policy.py [--checkpoint CKPT] [--calls 10] [--steps 4 8 16]

Without ``--checkpoint`` a randomly initialised model of ``--config`` is used: latency does not
depend on the weights (the codec's work on undecodable images can differ slightly).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from actionimages.model import build_model, load_model
    from actionimages.policy.action_images.policy import ActionImagePolicy
    from actionimages.sim import make_env

    model = load_model(args.checkpoint) if args.checkpoint else build_model(args.config)
    env = make_env("reach_target", split="heldout", seed=0, image_size=128)
    obs, _ = env.reset(seed=0)
    out = {"config": model.spec.name, "threads": torch.get_num_threads(), "results": []}
    for steps in args.steps:
        policy = ActionImagePolicy(model, num_steps=steps)
        policy.reset(obs)
        policy.plan(obs)  # warm-up
        times, cpu = [], []
        for i in range(args.calls):
            policy.set_seed(i)
            t0, c0 = time.perf_counter(), time.process_time()
            policy.plan(obs)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # CPU seconds (all threads): less sensitive to contention
        med, p90, cmed = float(np.median(times)), float(np.percentile(times, 90)), float(np.median(cpu))
        out["results"].append({"num_steps": steps, "median_s": med, "p90_s": p90, "median_cpu_s": cmed})
        print(f"num_steps={steps:3d}: median {med:.3f} s wall (p90 {p90:.3f} s), {cmed:.3f} CPU-s per replan")
    env.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
