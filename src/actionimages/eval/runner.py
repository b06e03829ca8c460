"""Closed-loop evaluation: roll policies out in the embedded sim, score success, write results.json.

Every episode has its own seed derived from ``(seed, task, split, index)``, so results do not depend
on how episodes are spread over worker processes: the same command gives the same numbers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from actionimages.atomic import write_json_atomic
from actionimages.errors import ActionImagesError
from actionimages.eval.stats import wilson_interval
from actionimages.eval.video import tile_rollout_frame, write_video
from actionimages.policy.base import Policy

DEFAULT_MAX_STEPS = 200


SECRET_OPTIONS = ("token",)


@dataclass(frozen=True)
class PolicySpec:
    """A picklable recipe for building a policy inside a worker process.

    ``kind``: a name in ``actionimages.policy.registry.POLICIES`` (``expert``, ``action_images``,
    ``bc``, ``lowdim``, the ladder's ``oracle_codec`` / ``oracle_autoencoder``, ...);
    ``checkpoint``: directory (None for the expert);
    ``options``: keyword arguments for the policy constructor.
    """

    kind: str
    checkpoint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        # results.json is shared and published: a secret never goes into it
        options = {k: ("<redacted>" if k in SECRET_OPTIONS and v else v) for k, v in self.options.items()}
        return {"kind": self.kind, "checkpoint": self.checkpoint, "options": options}


def build_policy(spec: PolicySpec) -> Policy:
    """Instantiate the policy a :class:`PolicySpec` describes (kinds: ``actionimages.policy.registry``)."""
    from actionimages.policy.registry import build_policy as build

    return build(spec.kind, spec.checkpoint, **spec.options)


def check_tasks_split(tasks: Sequence[str], split: str) -> None:
    """Raise a clear error for no tasks, unknown tasks or a split the sim does not have."""
    from actionimages.sim import SPLITS, TASKS

    if not tasks:
        raise ActionImagesError("no tasks given")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ActionImagesError(f"unknown task(s) {unknown}; available: {list(TASKS)}")
    if split not in SPLITS:
        raise ActionImagesError(f"unknown split {split!r}; available: {list(SPLITS)}")


def episode_seed(seed: int, task: str, split: str, index: int) -> int:
    """A stable per-episode seed (independent of Python's hash randomisation and of workers)."""
    return (int(seed) * 1_000_003 + zlib.crc32(f"{task}/{split}".encode()) + int(index) * 7919) % (2**31 - 1)


@dataclass
class EpisodeResult:
    task: str
    split: str
    index: int
    seed: int
    success: bool
    steps: int
    wall_s: float
    stats: dict[str, Any]
    video: str | None = None
    trajectory: str | None = None


def _env_max_steps(env: Any, fallback: int) -> int:
    for obj in (env, getattr(env, "unwrapped", None)):
        for name in ("max_steps", "max_episode_steps"):
            v = getattr(obj, name, None)
            if isinstance(v, int) and v > 0:
                return v
    spec = getattr(env, "spec", None)
    v = getattr(spec, "max_episode_steps", None)
    return v if isinstance(v, int) and v > 0 else fallback


def run_episode(
    policy: Policy,
    task: str,
    split: str,
    seed: int,
    index: int = 0,
    max_steps: int | None = None,
    image_size: int = 128,
    video_path: str | Path | None = None,
    trajectory_path: str | Path | None = None,
    fps: float = 10.0,
) -> EpisodeResult:
    """Roll out one episode of ``task`` on ``split`` with ``policy``; stop at success or the step limit.

    Writes an MP4 (observations beside the policy's action images) when ``video_path`` is given, and
    an ``.npz`` with the end-effector trajectory, commanded actions and plans when ``trajectory_path``
    is given.
    """
    from actionimages.sim import make_env

    if not isinstance(policy, Policy):
        raise ActionImagesError(
            f"{type(policy).__name__} is not a policy: subclass actionimages.policy.Policy (reset, act)"
        )
    env = make_env(task, split=split, seed=seed, image_size=image_size)
    t0 = time.perf_counter()
    try:
        obs, _ = env.reset(seed=seed)
        policy.attach(env)
        policy.set_seed(seed)
        policy.reset(obs)
        limit = max_steps or _env_max_steps(env, DEFAULT_MAX_STEPS)
        frames: list[np.ndarray] = []
        poses, actions = [np.asarray(obs["ee_pose"], dtype=np.float64)], []

        def record(o: dict[str, Any]) -> None:
            if video_path is not None:
                preview = policy.preview()
                frames.append(tile_rollout_frame(o["images"], preview))

        record(obs)
        # The tool's distance to the task's instructed object, where the task names one: how near a
        # failure came (issue 22's precision measure), not only whether it arrived.
        unwrapped = getattr(env, "unwrapped", env)
        target = getattr(getattr(unwrapped, "task_state", None), "target", None)
        target = None if target is None else unwrapped.task.world_point(target)  # (x, y) lifted
        distances: list[float] = []

        def measure() -> None:
            if target is not None:
                distances.append(float(np.linalg.norm(unwrapped.tcp_pos() - target)))

        measure()
        success, steps, env_warnings = False, 0, 0
        for steps in range(1, limit + 1):  # noqa: B007 (steps is used after the loop)
            action = np.asarray(policy.act(obs), dtype=np.float64)
            if action.shape not in ((7,), (8,)) or not np.all(np.isfinite(action)):
                raise ActionImagesError(f"policy returned an invalid action {action!r} (need finite (7,))")
            with warnings.catch_warnings(record=True) as caught:
                # The env warns on clipped / unreachable targets; count them instead of flooding the log.
                warnings.simplefilter("always")
                obs, _, terminated, truncated, info = env.step(action)
            env_warnings += len(caught)
            actions.append(action[:7] if action.shape == (7,) else action)
            poses.append(np.asarray(obs["ee_pose"], dtype=np.float64))
            measure()
            record(obs)
            if info.get("success", False):
                success = True
                break
            if terminated or truncated:
                break
        if video_path is not None and frames:
            # Hold the last frame half a second so the outcome is visible.
            frames.extend([frames[-1]] * int(fps // 2))
            write_video(frames, video_path, fps=fps)
        if trajectory_path is not None:
            Path(trajectory_path).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                trajectory_path,
                ee_pose=np.stack(poses),
                actions=np.stack(actions) if actions else np.zeros((0, 7)),
                success=success,
            )
    finally:
        env.close()
    stats = dict(policy.stats())
    stats["env_warnings"] = env_warnings  # targets the env clipped or its IK could not reach
    if distances:
        stats["closest_m"] = min(distances)
        stats["final_m"] = distances[-1]
    return EpisodeResult(
        task=task,
        split=split,
        index=index,
        seed=seed,
        success=bool(success),
        steps=steps,
        wall_s=time.perf_counter() - t0,
        stats=stats,
        video=str(video_path) if video_path is not None and frames else None,
        trajectory=str(trajectory_path) if trajectory_path is not None else None,
    )


# ------------------------------------------------------------ worker side
_WORKER_POLICY: Policy | None = None


def _init_worker(spec: PolicySpec, threads: int) -> None:
    global _WORKER_POLICY
    import torch

    torch.set_num_threads(max(1, threads))
    _WORKER_POLICY = build_policy(spec)


def _run_job(job: dict[str, Any]) -> EpisodeResult:
    assert _WORKER_POLICY is not None, "worker not initialised"
    return run_episode(_WORKER_POLICY, **job)


def summarize(results: list[EpisodeResult]) -> dict[str, dict[str, Any]]:
    """Per-task success rate, Wilson 95% interval and policy counters."""
    tasks: dict[str, dict[str, Any]] = {}
    for task in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == task]
        k, n = sum(r.success for r in rs), len(rs)
        lo, hi = wilson_interval(k, n)
        lat = [x for r in rs for x in r.stats.get("latencies_s", [])]
        entry: dict[str, Any] = {
            "success_rate": k / n,
            "episodes": n,
            "successes": k,
            "ci95": [lo, hi],
            "mean_steps": float(np.mean([r.steps for r in rs])),
            "replans": int(sum(r.stats.get("replans", 0) for r in rs)),
            "invalid_decodes": int(sum(r.stats.get("invalid_decodes", 0) for r in rs)),
            "invalid_frames": int(sum(r.stats.get("invalid_frames", 0) for r in rs)),
            "env_warnings": int(sum(r.stats.get("env_warnings", 0) for r in rs)),
        }
        missed = [r.stats for r in rs if not r.success and "closest_m" in r.stats]
        if missed:  # how near the failures came to the instructed object (median, m)
            entry["failures_closest_median_m"] = float(np.median([s["closest_m"] for s in missed]))
            entry["failures_final_median_m"] = float(np.median([s["final_m"] for s in missed]))
        if lat:
            entry["latency_s"] = {
                "median": float(np.median(lat)),
                "p90": float(np.percentile(lat, 90)),
                "mean": float(np.mean(lat)),
                "calls": len(lat),
            }
        tasks[task] = entry
    return tasks


def evaluate(
    spec: PolicySpec,
    tasks: list[str],
    split: str = "test",
    episodes: int = 10,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    videos_per_task: int = 2,
    max_steps: int | None = None,
    image_size: int = 128,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``spec`` closed-loop on ``tasks`` × ``episodes`` and (if ``out``) write ``out/results.json``.

    Returns the results dict: ``{"tasks": {task: {"success_rate", "episodes", "ci95", ...}}, "split",
    "seed", "policy", "episodes": [per-episode records], ...}``. ``workers > 1`` spreads episodes over
    processes; each episode's seed is fixed, so the numbers do not depend on ``workers``.
    ``threads``: torch threads per process (default: ``$OMP_NUM_THREADS`` if set, else the cores
    divided among the workers; on a
    machine shared with other jobs 1 is often much faster, as idle-spinning threads contend).
    """
    check_tasks_split(tasks, split)
    if episodes < 1 or workers < 1:
        raise ActionImagesError(f"episodes and workers must be >= 1, got {episodes} and {workers}")
    from actionimages.sim.env import MAX_IMAGE, MIN_IMAGE

    if not MIN_IMAGE <= image_size <= MAX_IMAGE:  # here, before any episode starts
        raise ActionImagesError(f"image_size must be in [{MIN_IMAGE}, {MAX_IMAGE}], got {image_size}")
    out_dir = Path(out) if out is not None else None
    jobs = []
    for task in tasks:
        for i in range(episodes):
            job: dict[str, Any] = dict(
                task=task,
                split=split,
                seed=episode_seed(seed, task, split, i),
                index=i,
                max_steps=max_steps,
                image_size=image_size,
            )
            if out_dir is not None:
                job["trajectory_path"] = str(out_dir / "episodes" / f"{task}_{i:03d}.npz")
                if i < videos_per_task:
                    job["video_path"] = str(out_dir / "videos" / f"{task}_{i:03d}.mp4")
            jobs.append(job)

    t0 = time.perf_counter()
    results: list[EpisodeResult] = []
    bar = tqdm(total=len(jobs), desc=f"eval {spec.kind} [{split}]", unit="ep", disable=not progress)
    if threads is not None and threads < 1:
        raise ActionImagesError(f"threads must be >= 1, got {threads}")
    env_threads = os.environ.get("OMP_NUM_THREADS", "")
    default = int(env_threads) if env_threads.isdigit() and int(env_threads) > 0 else None
    per_worker = threads or default or max(1, (os.cpu_count() or 1) // workers)
    try:
        if workers == 1:
            import torch

            previous = torch.get_num_threads()
            torch.set_num_threads(per_worker)
            try:
                policy = build_policy(spec)
                for job in jobs:
                    results.append(run_episode(policy, **job))
                    bar.update(1)
                    bar.set_postfix(success=f"{np.mean([r.success for r in results]):.2f}")
            finally:
                torch.set_num_threads(previous)
        else:
            ctx = mp.get_context("spawn")  # torch and MuJoCo/EGL state do not survive fork reliably
            init = (spec, per_worker)
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init)
            with pool:
                for r in pool.map(_run_job, jobs):
                    results.append(r)
                    bar.update(1)
                    bar.set_postfix(success=f"{np.mean([x.success for x in results]):.2f}")
    except BaseException:  # the bar is erased: a refused checkpoint or view gives its one error line alone
        bar.leave = False
        bar.close()
        raise
    bar.close()

    summary: dict[str, Any] = {
        "tasks": summarize(results),
        "split": split,
        "seed": seed,
        "episodes_per_task": episodes,
        "policy": spec.describe(),
        "image_size": image_size,
        "workers": workers,
        "threads_per_worker": per_worker,
        "wall_s": round(time.perf_counter() - t0, 2),
        "episodes": [asdict(r) for r in results],
    }
    if extra:
        summary.update(extra)
    if out_dir is not None:
        write_json_atomic(out_dir / "results.json", summary, indent=2)
    return summary
