"""The oracle ladder and two perception checks: which stage of the action-image policy loses success?

**Ladder** (closed loop, the same episodes and seeds as ``actionimages eval``); each rung swaps one
stage for the real one:

| rung | plan source (then: codec decode, the policy's receding-horizon executor) |
|---|---|
| ``expert`` | none: the scripted expert's actions are executed directly |
| ``codec`` | the expert's next F poses drawn as action images (training's drawing) |
| ``autoencoder`` | as ``codec``, through the model's VAE (encode, decode) |
| ``model`` | the world model generates the action video (:class:`ActionImagePolicy`) |

(``codec`` and ``autoencoder`` are
:class:`~actionimages.policy.action_images.oracle.OracleActionImagePolicy`.)

**Perception checks**: :func:`autoencoder_objects` (do the task objects survive the VAE's
reconstruction of the first frame?) and :func:`target_following` (on ``reach_target``: does the
plan turn when the target moves, under the same sampling noise?).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from actionimages.atomic import write_json_atomic
from actionimages.codec.camera import as_camera
from actionimages.errors import ActionImagesError
from actionimages.eval.runner import PolicySpec, check_tasks_split, episode_seed, evaluate

RUNGS: tuple[str, ...] = ("expert", "codec", "autoencoder", "model")
RUNG_KINDS = {
    "expert": "expert",
    "codec": "oracle_codec",
    "autoencoder": "oracle_autoencoder",
    "model": "action_images",
}
# Target moves for the following check: ±12 cm sideways (y), ±6 cm in height (z).
FOLLOW_OFFSETS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.12, 0.0),
    (0.0, -0.12, 0.0),
    (0.0, 0.0, 0.06),
    (0.0, 0.0, -0.06),
)


def parse_rungs(rungs: str | Sequence[str]) -> list[str]:
    """Rung names from ``"expert,codec"`` or a sequence; unknown names raise, naming the valid ones."""
    names = (
        [r.strip() for r in rungs.split(",")] if isinstance(rungs, str) else [str(r).strip() for r in rungs]
    )
    names = [r for r in names if r]
    bad = [r for r in names if r not in RUNGS]
    if bad or not names:
        raise ActionImagesError(f"unknown rung(s) {bad or names}; choose from {list(RUNGS)}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------- ladder
def run_ladder(
    checkpoint: str | Path | None,
    tasks: Sequence[str],
    split: str = "test",
    episodes: int = 50,
    rungs: str | Sequence[str] = RUNGS,
    seed: int = 0,
    workers: int = 1,
    out: str | Path | None = None,
    options: dict[str, Any] | None = None,
    image_size: int = 128,
    max_steps: int | None = None,
    videos: int = 0,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every rung closed loop on ``tasks`` × ``episodes`` (same seeds for every rung).

    Args:
        checkpoint: world-model checkpoint (model dir, step dir or run); needed by every rung but
            ``expert`` (config, VAE, weights).
        options: ActionImagePolicy options shared by the three action-image rungs (``execute``,
            ``views``, ``repeat``; ``num_steps``/``guidance`` matter to ``model`` only). ``seed`` is
            added: it fixes the model's sampling noise as in ``actionimages eval``.
        out: if given, each rung's ``evaluate`` output goes to ``out/rungs/<rung>/`` and the summary
            to ``out/ladder.json``.
    Returns:
        ``{"rungs": {rung: {task: {"successes", "episodes", "success_rate", "ci95", ...}}}, "split",
        "seed", "episodes_per_task", "checkpoint", "options", "wall_s"}``.
    """
    from actionimages.train.checkpoint import resolve_model_dir

    names = parse_rungs(rungs)
    check_tasks_split(tasks, split)
    model_dir: Path | None = None
    if any(r != "expert" for r in names):
        if checkpoint is None:
            raise ActionImagesError(
                f"rungs {[r for r in names if r != 'expert']} need a world-model checkpoint"
            )
        model_dir = resolve_model_dir(checkpoint)[0].resolve()  # absolute: workers may start elsewhere
    opts = {**(options or {}), "seed": int(seed)}
    out_dir = Path(out) if out is not None else None
    t0 = time.perf_counter()
    table: dict[str, dict[str, Any]] = {}
    for rung in names:
        kind = RUNG_KINDS[rung]
        spec = PolicySpec(kind) if kind == "expert" else PolicySpec(kind, str(model_dir), dict(opts))
        res = evaluate(
            spec, list(tasks), split=split, episodes=episodes, seed=seed,
            out=out_dir / "rungs" / rung if out_dir is not None else None,
            workers=workers, videos_per_task=videos, max_steps=max_steps, image_size=image_size,
            extra={"rung": rung}, progress=progress, threads=threads,
        )  # fmt: skip
        table[rung] = {}
        for task, e in res["tasks"].items():
            entry = {k: e[k] for k in ("successes", "episodes", "success_rate", "ci95", "mean_steps")}
            entry.update({k: e[k] for k in ("replans", "invalid_decodes", "invalid_frames", "env_warnings")})
            errs = [
                x for r in res["episodes"] if r["task"] == task for x in r["stats"].get("plan_error_mm", [])
            ]
            if errs:  # oracle rungs: how far the decoded plans were from the drawn expert poses
                entry["plan_error_mm_median"] = float(np.median(errs))
            table[rung][task] = entry
    summary = {
        "rungs": table,
        "split": split,
        "seed": int(seed),
        "episodes_per_task": int(episodes),
        "tasks": list(tasks),
        "checkpoint": str(model_dir) if model_dir is not None else None,
        "options": opts,
        "image_size": int(image_size),
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    if out_dir is not None:
        write_json(out_dir / "ladder.json", summary)
    return summary


def markdown_table(ladder: dict[str, Any]) -> str:
    """The ladder as a markdown table: one row per rung, ``k/n (rate, 95% CI)`` per task."""
    tasks = list(ladder["tasks"])
    lines = ["| rung | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for rung, per_task in ladder["rungs"].items():
        cells = []
        for t in tasks:
            e = per_task[t]
            lo, hi = e["ci95"]
            rate, lo, hi = (f"{100 * x:.0f}" for x in (e["success_rate"], lo, hi))
            cells.append(f"{e['successes']}/{e['episodes']} ({rate}%, {lo}–{hi}%)")
        lines.append(f"| {rung} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- shared helpers
def write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically as JSON (NaN becomes null)."""
    write_json_atomic(path, _finite(data), indent=2)


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    return x


def observe(env: Any) -> dict[str, Any]:
    """The env's observation of its current state (what ``reset`` / ``step`` return), with images
    even when the env was built with ``render=False``."""
    return env.observation(images=True)


def object_points(task: str, objects: Sequence[Any]) -> np.ndarray:
    """World positions (N, 3) of the objects a task lists in ``task_state.objects``.

    Entries given as table positions (x, y) are lifted to the task's ``object_z``; the first object is
    the instructed one (the target, button, cabinet, cube or pad).
    """
    from actionimages.sim.tasks import make_task

    t = make_task(task)
    pts = [t.world_point(o) for o in objects]
    return np.stack(pts) if pts else np.zeros((0, 3))


# ------------------------------------------------------------------- perception 1: autoencoder
def autoencoder_objects(
    model: Any,
    tasks: Sequence[str],
    split: str = "test",
    scenes: int = 12,
    seed: int = 0,
    image_size: int = 128,
    views: Sequence[str] | None = None,
    png: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Do the task objects survive the model's VAE? First frames of ``scenes`` resets per task.

    Each scene's model views are preprocessed as the policy does (``observation_sample``: crop,
    resize to the model's size), encoded and decoded. At every object's projected pixel (inside the
    image, in front of the camera) it measures the colour error ``Σ|Δ|`` over RGB in 0..255 (so
    0..765) between original and reconstruction, the original's contrast to the table (the
    median colour of the table's pixels, from the sim's segmentation) and whether the reconstructed
    pixel is nearer the original object colour than the table colour.

    Returns ``{task: {"scenes", "measurements", "median_error", "median_error_primary",
    "median_contrast", "nearer_object_fraction", "median_image_error"}, "views", "size"}``;
    ``png``: a picture of each task's first scene, original beside reconstruction, objects marked.
    """
    from actionimages.policy.action_images.oracle import autoencode
    from actionimages.policy.observation import observation_sample, select_views
    from actionimages.sim import make_env

    check_tasks_split(tasks, split)
    if scenes < 1:
        raise ActionImagesError(f"scenes must be >= 1, got {scenes}")
    cfg = model.spec
    H, W = cfg.height, cfg.width
    out: dict[str, Any] = {}
    rows: list[np.ndarray] = []
    used_views: list[str] = []
    bar = tqdm(total=len(tasks) * scenes, desc="perception: autoencoder", unit="scene", disable=not progress)
    for task in tasks:
        errs, prim, contrast, nearer, image_err = [], [], [], [], []
        for i in range(scenes):
            s = episode_seed(seed, task, split, i)
            env = make_env(task, split=split, seed=s, image_size=image_size)
            try:
                obs, _ = env.reset(seed=s)
                used_views = select_views(obs, views, cfg.num_views)
                sample = observation_sample(obs, used_views, 1, H, W, sigma_frac=cfg.action_sigma_frac)
                rgb = sample["rgb"][None]  # (1, V, 3, 1, H, W) in [-1, 1]
                with torch.no_grad():
                    rec = autoencode(model, rgb, keep_first=False)
                orig = ((rgb[0, :, :, 0] + 1) * 127.5).permute(0, 2, 3, 1).double().numpy()  # (V, H, W, 3)
                recon = ((rec[0, :, :, 0] + 1) * 127.5).permute(0, 2, 3, 1).double().numpy()
                table_gid = env.geom_id("table")
                points = object_points(task, env.task_state.objects)
                marks: list[list[tuple[int, int, bool]]] = []
                for v, name in enumerate(used_views):
                    seg = env.renderer.render_geom_ids(env.data, name)
                    table = np.median(np.asarray(obs["images"][name], np.float64)[seg == table_gid], axis=0)
                    cam = as_camera(obs["cameras"][name]).crop_resize(W, H)
                    uv, depth = cam.project(points)
                    image_err.append(float(np.abs(orig[v] - recon[v]).sum(-1).mean()))
                    marks.append([])
                    for j, ((u, vv), d) in enumerate(zip(uv, depth, strict=True)):
                        x, y = int(np.rint(u)), int(np.rint(vv))
                        if d <= 0 or not (0 <= x < W and 0 <= y < H):
                            continue
                        o, r = orig[v, y, x], recon[v, y, x]
                        e = float(np.abs(o - r).sum())
                        errs.append(e)
                        if j == 0:
                            prim.append(e)
                        contrast.append(float(np.abs(o - table).sum()))
                        nearer.append(bool(np.abs(r - o).sum() < np.abs(r - table).sum()))
                        marks[-1].append((x, y, j == 0))
                if i == 0 and png is not None:
                    rows.append(_picture_row(orig, recon, marks))
            finally:
                env.close()
            bar.update(1)
        out[task] = {
            "scenes": scenes,
            "measurements": len(errs),
            "median_error": float(np.median(errs)) if errs else float("nan"),
            "median_error_primary": float(np.median(prim)) if prim else float("nan"),
            "median_contrast": float(np.median(contrast)) if contrast else float("nan"),
            "nearer_object_fraction": float(np.mean(nearer)) if nearer else float("nan"),
            "median_image_error": float(np.median(image_err)),
        }
    bar.close()
    if png is not None and rows:
        import imageio.v3 as iio

        Path(png).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(png, np.concatenate(rows, axis=0))
    res: dict[str, Any] = {
        "tasks": out,
        "views": used_views,
        "size": [H, W],
        "split": split,
        "seed": int(seed),
        # What the transformer sees of the current frames: with obs_patch it also reads them in
        # pixel space (exact), so objects the autoencoder drops still reach it.
        "observation_path": f"pixels ({cfg.obs_patch}-px tokens) + autoencoder"
        if cfg.obs_patch
        else "autoencoder",
    }
    if png is not None:
        res["picture"] = {
            "path": str(png),
            "rows": list(tasks),  # each task's first scene
            "columns": "per view: original | reconstruction; magenta: the instructed object, cyan: others",
        }
    return res


def _picture_row(orig: np.ndarray, recon: np.ndarray, marks: list[list[tuple[int, int, bool]]]) -> np.ndarray:
    """uint8 (2H', 2·V·W', 3)-ish row: per view original | reconstruction, 2× upscaled, objects marked."""
    scale = 2 if orig.shape[1] <= 128 else 1  # keep the picture small but visible
    tiles = []
    for v in range(orig.shape[0]):
        for img in (orig[v], recon[v]):
            t = np.repeat(np.repeat(np.clip(img, 0, 255).astype(np.uint8), scale, 0), scale, 1)
            for x, y, primary in marks[v]:
                colour = (255, 0, 255) if primary else (0, 255, 255)  # instructed object magenta
                cx, cy = x * scale + scale // 2, y * scale + scale // 2
                for dx in range(-4, 5):  # a hollow cross, so the pixel itself stays visible
                    if abs(dx) >= 2:
                        if 0 <= cx + dx < t.shape[1]:
                            t[cy, cx + dx] = colour
                        if 0 <= cy + dx < t.shape[0]:
                            t[cy + dx, cx] = colour
            tiles.append(t)
        tiles.append(np.full((tiles[-1].shape[0], 4, 3), 255, np.uint8))  # gap between views
    return np.concatenate(tiles[:-1], axis=1)


# ---------------------------------------------------------------- perception 2: target following
def _unit(x: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(x))
    return x / n if n > 1e-6 else None


def follow_tasks() -> tuple[str, ...]:
    """Tasks whose instructed object the following check can move (``Task.follow_body``)."""
    from actionimages.sim.tasks import TASK_CLASSES

    return tuple(name for name, cls in TASK_CLASSES.items() if cls.follow_body)


def target_following(
    policy: Any,
    split: str = "test",
    scenes: int = 10,
    seed: int = 0,
    image_size: int = 128,
    offsets: Sequence[Sequence[float]] = FOLLOW_OFFSETS,
    progress: bool = True,
    task: str = "reach_target",
) -> dict[str, Any]:
    """Does ``policy``'s plan follow the ``reach_target`` target when only the target moves?

    ``task``: ``reach_target`` or its one-sphere, no-clutter core ``reach_target_single``.

    For each base scene (the ladder's episode seeds) the target sphere is moved by each of
    ``offsets`` (m) and ``policy.plan(obs)`` runs with the same noise seed (``set_seed`` + ``reset``,
    so the plan index is 0 every time). With ``u_plan = unit(plan end − start)`` and
    ``u_tgt = unit(target − start)``, the **direction slope** is ``Σ Δu_plan·Δu_tgt / Σ |Δu_tgt|²``
    over (moved, base) pairs in which both plans decoded: 1 follows, 0 ignores. Also the mean
    displacement of the plan's end (mm) against that of a follower that keeps each plan's length
    but heads for the target.

    The plan end is its last frame F-1; a plan counts as decoded when frames 1..F-1 are all valid
    (the executor's valid-prefix rule). ``executed`` repeats the numbers with the end at frame k
    (the policy's ``execute``), since generated plans often lose their last frames.

    ``policy``: an :class:`ActionImagePolicy` or an oracle (anything with ``set_seed``, ``reset``,
    ``plan`` and optionally ``attach``).
    """
    import mujoco

    from actionimages.sim import make_env
    from actionimages.sim.tasks import make_task

    if task not in follow_tasks():
        raise ActionImagesError(f"target following runs on {list(follow_tasks())}, not {task!r}")
    body = make_task(task).follow_body
    check_tasks_split([task], split)
    if scenes < 1:
        raise ActionImagesError(f"scenes must be >= 1, got {scenes}")
    offs = [np.asarray(o, dtype=np.float64) for o in offsets]
    if not offs or any(o.shape != (3,) for o in offs):
        raise ActionImagesError("offsets must be a non-empty list of (dx, dy, dz)")
    labels = [_offset_label(o) for o in offs]
    # per scene: [(start (3,), target (3,), actions (F, 7), valid (F,))] for the base, then each offset
    records: list[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = []
    bar = tqdm(
        total=scenes * (1 + len(offs)), desc="perception: following", unit="plan", disable=not progress
    )
    for i in range(scenes):
        s = episode_seed(seed, task, split, i)
        env = make_env(task, split=split, seed=s, image_size=image_size)
        records.append([])
        try:
            for off in [np.zeros(3), *offs]:
                env.reset(seed=s)
                target = env.task_state.target
                target += off  # in place: the objects list and the expert's plan read this array
                env.model.body_pos[env.body_id(body)] = target
                mujoco.mj_forward(env.model, env.data)
                obs = observe(env)
                policy.attach(env)
                policy.set_seed(s)
                policy.reset(obs)
                plan = policy.plan(obs)
                start = np.asarray(obs["ee_pose"][:3], dtype=np.float64)
                acts = np.asarray(plan["actions"], dtype=np.float64)
                records[-1].append((start, target.copy(), acts, np.asarray(plan["valid"], dtype=bool)))
                bar.update(1)
        finally:
            env.close()
    bar.close()
    last = records[0][0][2].shape[0] - 1
    k = int(getattr(policy, "execute", last))
    out: dict[str, Any] = {
        "task": task,
        "split": split,
        "scenes": scenes,
        "offsets_m": {lab: o.tolist() for lab, o in zip(labels, offs, strict=True)},
        "plans": scenes * (1 + len(offs)),
        "frame": last,
        **_follow_metrics(records, labels, last),
    }
    out["executed"] = {"frame": k, **_follow_metrics(records, labels, k)}
    return out


def _follow_metrics(
    records: list[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]], labels: list[str], frame: int
) -> dict[str, Any]:
    """The following numbers of :func:`target_following` with the plan end at ``frame``."""
    num = den = 0.0
    per_off = {lab: [0.0, 0.0] for lab in labels}
    disp_plan, disp_follow, lengths = [], [], []
    pairs = decoded = 0

    def direction(
        start: np.ndarray, acts: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        ok = bool(valid[1 : frame + 1].all()) and bool(np.isfinite(acts[1 : frame + 1]).all())
        u = _unit(acts[frame, :3] - start) if ok else None
        return (acts[frame, :3], u) if u is not None else None

    for scene in records:
        dirs = [direction(st, a, v) for st, _, a, v in scene]
        decoded += sum(d is not None for d in dirs)
        start, tgt_b = scene[0][0], scene[0][1]
        ut_b = _unit(tgt_b - start)
        for lab, (st, tgt, _, _), d in zip(labels, scene[1:], dirs[1:], strict=True):
            ut = _unit(tgt - st)
            if dirs[0] is None or d is None or ut is None or ut_b is None:
                continue
            (end_b, up_b), (end, up) = dirs[0], d
            pairs += 1
            du_p, du_t = up - up_b, ut - ut_b
            num += float(du_p @ du_t)
            den += float(du_t @ du_t)
            per_off[lab][0] += float(du_p @ du_t)
            per_off[lab][1] += float(du_t @ du_t)
            disp_plan.append(float(np.linalg.norm(end - end_b)))
            # a follower: the same plan lengths, pointed at the targets
            len_b, len_p = np.linalg.norm(end_b - start), np.linalg.norm(end - st)
            disp_follow.append(float(np.linalg.norm(len_p * ut - len_b * ut_b)))
            lengths.append(float(len_p))

    def mean_mm(x: list[float]) -> float:
        return 1000 * float(np.mean(x)) if x else float("nan")

    return {
        "decoded_plans": decoded,
        "pairs": pairs,
        "pairs_total": len(records) * len(labels),
        "slope": num / den if den > 0 else float("nan"),
        "slope_per_offset": {lab: (n / d if d > 0 else float("nan")) for lab, (n, d) in per_off.items()},
        "mean_plan_displacement_mm": mean_mm(disp_plan),
        "mean_follower_displacement_mm": mean_mm(disp_follow),
        "mean_plan_length_mm": mean_mm(lengths),
    }


def _offset_label(o: np.ndarray) -> str:
    """``y+12cm`` for (0, 0.12, 0); several axes joined by commas."""
    parts = [f"{ax}{v * 100:+.0f}cm" for ax, v in zip("xyz", o, strict=True) if abs(v) > 1e-9]
    return ",".join(parts) or "base"


def perception_markdown(perception: dict[str, Any]) -> str:
    """Markdown tables of :func:`autoencoder_objects` and of one or more :func:`target_following` results."""
    lines: list[str] = []

    def f(x: Any, fmt: str = ".0f") -> str:
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)

    ae = perception.get("autoencoder_objects")
    if ae:
        lines += [
            f"The model sees the current frames through: {ae.get('observation_path', 'autoencoder')}.",
            "",
            "| task | object colour error, median (0–765) | instructed object | object vs table contrast "
            "| reconstruction nearer the object than the table | whole-image error |",
            "|---|---|---|---|---|---|",
        ]
        for task, e in ae["tasks"].items():
            lines.append(
                f"| {task} | {f(e['median_error'])} | {f(e['median_error_primary'])} "
                f"| {f(e['median_contrast'])} "
                f"| {f(100 * e['nearer_object_fraction'] if e['measurements'] else None)}% "
                f"| {f(e['median_image_error'])} |"
            )
    follow = perception.get("target_following")
    if follow:
        lines += [
            "",
            "| plan source | direction slope (frame F-1) | pairs | plan end moves (mm) "
            "| a follower's moves (mm) | slope at frame k | pairs |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in follow.items():
            ex = r["executed"]
            lines.append(
                f"| {name} | {f(r['slope'], '.2f')} | {r['pairs']}/{r['pairs_total']} "
                f"| {f(r['mean_plan_displacement_mm'], '.1f')} "
                f"| {f(r['mean_follower_displacement_mm'], '.1f')} "
                f"| {f(ex['slope'], '.2f')} | {ex['pairs']}/{ex['pairs_total']} |"
            )
    return "\n".join(lines)
