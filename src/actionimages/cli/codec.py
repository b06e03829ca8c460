"""``actionimages codec demo``: draw a demo trajectory as action images, decode it back, show both."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from actionimages.cli.ranges import NONNEGATIVE
from actionimages.codec import (
    ActionImageCodec,
    Camera,
    camera_ring,
    euler_to_matrix,
    matrix_to_euler,
    rotation_angle_between,
)
from actionimages.errors import ActionImagesError

WORKSPACE_CENTER = np.array([0.5, 0.0, 0.25])
LOOK_AT = np.array([0.62, 0.0, 0.33])  # the middle of the demo trajectory


def demo_cameras(size: int, views: int) -> list[Camera]:
    """``views`` calibrated cameras 1.3 m from the workspace, spread over 150° of azimuth."""
    return camera_ring(WORKSPACE_CENTER, LOOK_AT, views, 1.3, 150, 35, 8, 30, size)


def demo_trajectory(frames: int = 41) -> np.ndarray:
    """A smooth reach: an arc over the table that descends, rolls the wrist 90°, closes the gripper.

    Returns actions (frames, 7) ``[x, y, z, rx, ry, rz, openness]``.
    """
    s = np.linspace(0.0, 1.0, frames)
    ease = 0.5 - 0.5 * np.cos(np.pi * s)  # smooth start and stop
    theta = np.deg2rad(-70 + 140 * ease)
    pos = np.stack(
        [
            WORKSPACE_CENTER[0] + 0.05 + 0.12 * np.cos(theta),
            WORKSPACE_CENTER[1] + 0.20 * np.sin(theta),
            WORKSPACE_CENTER[2] + 0.18 - 0.16 * ease,
        ],
        -1,
    )
    # Tool pointing down (tool z = world -z), tilted 20° forward, rolling 90° about its own axis.
    roll = np.deg2rad(90) * ease
    R_down = euler_to_matrix(np.array([np.pi, 0.0, 0.0]))
    R_tilt = euler_to_matrix(np.array([0.0, np.deg2rad(20), 0.0]))
    R_roll = euler_to_matrix(np.stack([np.zeros(frames), np.zeros(frames), roll], -1))
    R = R_tilt @ R_down @ R_roll  # roll about the tool's own z axis (right-multiplied)
    euler = matrix_to_euler(R)
    openness = (s < 0.6).astype(np.float64)  # open, then close near the end of the reach
    return np.concatenate([pos, euler, openness[:, None]], -1)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def run_demo(
    out: Path,
    size: int = 256,
    views: int = 2,
    frames: int = 41,
    columns: int = 6,
    noise: float = 0.0,
    seed: int = 0,
) -> dict:
    """Encode the demo trajectory, decode it, write ``codec_demo.png`` and ``errors.json`` to ``out``.

    ``noise`` > 0 adds Gaussian pixel noise of that standard deviation before decoding.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if views < 2:
        raise ActionImagesError(f"--views must be at least 2 to triangulate, got {views}")
    if size < 32:
        raise ActionImagesError(f"--size must be at least 32 pixels, got {size}")
    if not 0 <= noise <= 0.5:
        raise ActionImagesError(f"--noise must be in [0, 0.5], got {noise}")
    if frames < 2:
        raise ActionImagesError(f"--frames must be at least 2, got {frames}")
    out.mkdir(parents=True, exist_ok=True)
    cams = demo_cameras(size, views)
    codec = ActionImageCodec(cams)
    actions = demo_trajectory(frames)
    images = codec.encode(actions)  # (V, T, H, W, 3)
    if noise > 0:
        rng = np.random.default_rng(seed)
        images = np.clip(images + rng.normal(0, noise, images.shape).astype(np.float32), 0, 1)
    res = codec.decode(images)
    dec = res.actions

    pos_mm = np.linalg.norm(dec[:, :3] - actions[:, :3], axis=1) * 1000
    rot_deg = np.degrees(
        rotation_angle_between(euler_to_matrix(actions[:, 3:6]), euler_to_matrix(dec[:, 3:6]))
    )
    errors = {
        "frames": frames,
        "views": views,
        "size": size,
        "noise": noise,
        "valid_fraction": float(res.valid.mean()),
        "position_mm": {"median": float(np.median(pos_mm)), "max": float(pos_mm.max())},
        "rotation_deg": {"median": float(np.median(rot_deg)), "max": float(rot_deg.max())},
        "openness_accuracy": float((dec[:, 6] == actions[:, 6]).mean()),
        "reprojection_error_px": {"median": float(np.nanmedian(res.reprojection_error))},
    }
    (out / "errors.json").write_text(json.dumps(errors, indent=2) + "\n")
    np.save(out / "actions_true.npy", actions)
    np.save(out / "actions_decoded.npy", dec)
    (out / "cameras.json").write_text(json.dumps([c.to_dict() for c in cams]))

    # ---- figure: views × selected frames, decoded pose overlaid; then true vs decoded curves
    sel = np.unique(np.linspace(0, frames - 1, min(columns, frames)).round().astype(int))
    uv_dec, _ = codec.project_points(res.points)  # (V, T, 3, 2) decoded points re-projected
    fig = plt.figure(figsize=(2.2 * len(sel), 2.2 * views + 5.6), dpi=110, facecolor="white")
    gs = fig.add_gridspec(
        views + 2, len(sel), height_ratios=[1] * views + [1.25, 1.25], hspace=0.35, wspace=0.3
    )
    for v in range(views):
        for j, t in enumerate(sel):
            ax = fig.add_subplot(gs[v, j])
            ax.imshow(images[v, t], interpolation="bilinear")
            p = uv_dec[v, t]
            if np.isfinite(p).all():
                ax.plot([p[0, 0], p[1, 0]], [p[0, 1], p[1, 1]], color="#7CFC00", lw=1.2)
                ax.plot([p[0, 0], p[2, 0]], [p[0, 1], p[2, 1]], color="#00BFFF", lw=1.2)
                ax.scatter(p[:, 0], p[:, 1], s=14, facecolors="none", edgecolors="white", linewidths=0.9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, size - 0.5)
            ax.set_ylim(size - 0.5, -0.5)
            if v == 0:
                ax.set_title(f"t = {t}" + ("" if res.valid[t] else " (invalid)"), fontsize=9)
            if j == 0:
                ax.set_ylabel(f"view {v + 1}", fontsize=9)
    t_axis = np.arange(frames)
    half = len(sel) // 2 or 1
    ax_p = fig.add_subplot(gs[views, :half])
    for k, (name, col) in enumerate(zip("xyz", ("#d62728", "#2ca02c", "#1f77b4"), strict=True)):
        ax_p.plot(t_axis, actions[:, k], color=col, lw=2.2, alpha=0.45, label=f"{name} true")
        ax_p.plot(t_axis, dec[:, k], color=col, lw=0, marker=".", ms=4, label=f"{name} decoded")
    ax_p.set_ylabel("position (m)", fontsize=9)
    ax_p.legend(fontsize=7, ncol=3, loc="best")
    ax_r = fig.add_subplot(gs[views, half:])
    for k, (name, col) in enumerate(zip(("rx", "ry", "rz"), ("#d62728", "#2ca02c", "#1f77b4"), strict=True)):
        truth = np.unwrap(actions[:, 3 + k])
        decoded = truth + _wrap(dec[:, 3 + k] - truth)  # same branch as the truth for plotting
        ax_r.plot(t_axis, np.degrees(truth), color=col, lw=2.2, alpha=0.45, label=f"{name} true")
        ax_r.plot(t_axis, np.degrees(decoded), color=col, lw=0, marker=".", ms=4, label=f"{name} decoded")
    ax_r.set_ylabel("Euler xyz (deg)", fontsize=9)
    ax_r.yaxis.set_label_position("right")
    ax_r.legend(fontsize=7, ncol=3, loc="best")
    ax_o = fig.add_subplot(gs[views + 1, :half])
    ax_o.step(t_axis, actions[:, 6], where="mid", color="k", lw=2.2, alpha=0.45, label="openness true")
    ax_o.plot(t_axis, dec[:, 6], "k.", ms=5, label="openness decoded")
    ax_o.set_ylim(-0.15, 1.15)
    ax_o.set_xlabel("frame", fontsize=9)
    ax_o.legend(fontsize=7, loc="center left")
    ax_e = fig.add_subplot(gs[views + 1, half:])
    ax_e.semilogy(t_axis, np.maximum(pos_mm, 1e-7), "o-", ms=3, color="#9467bd", label="position error (mm)")
    ax_e.semilogy(
        t_axis, np.maximum(rot_deg, 1e-7), "s-", ms=3, color="#8c564b", label="rotation error (deg)"
    )
    ax_e.set_xlabel("frame", fontsize=9)
    ax_e.legend(fontsize=7, loc="best")
    fig.suptitle(
        f"Action images ({views} views, {size}², σ = {codec.sigma:.1f} px): red = position, green = tool x, "
        f"blue = −tool z, blue background = gripper open{f', pixel noise σ = {noise}' if noise else ''}\n"
        f"decoded: position error median {errors['position_mm']['median']:.2g} mm, "
        f"rotation median {errors['rotation_deg']['median']:.2g}°, "
        f"openness {100 * errors['openness_accuracy']:.0f}% right",
        fontsize=10,
    )
    fig.savefig(out / "codec_demo.png", bbox_inches="tight")
    plt.close(fig)
    return errors


def _cmd_demo(args: argparse.Namespace) -> int:
    errors = run_demo(
        Path(args.out), size=args.size, views=args.views, frames=args.frames, noise=args.noise, seed=args.seed
    )
    print(
        f"codec demo: {errors['frames']} frames × {errors['views']} views at {errors['size']}²: "
        f"position error median {errors['position_mm']['median']:.3g} mm "
        f"(max {errors['position_mm']['max']:.3g}), "
        f"rotation median {errors['rotation_deg']['median']:.3g}° (max {errors['rotation_deg']['max']:.3g}), "
        f"openness {100 * errors['openness_accuracy']:.0f}% right, "
        f"{100 * errors['valid_fraction']:.0f}% frames valid"
    )
    print(f"wrote {Path(args.out) / 'codec_demo.png'} and {Path(args.out) / 'errors.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("codec", help="action-image codec tools (demo)")
    sub = parser.add_subparsers(dest="codec_command", metavar="ACTION", required=True)
    demo = sub.add_parser("demo", help="encode a demo trajectory as action images, decode it, plot both")
    demo.add_argument("--out", required=True, help="output directory")
    demo.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    demo.add_argument("--views", type=int, default=2, help="number of calibrated cameras (default 2)")
    demo.add_argument("--frames", type=int, default=41, help="trajectory length (default 41)")
    demo.add_argument("--noise", type=float, default=0.0, help="Gaussian pixel noise std before decoding")
    demo.add_argument("--seed", type=NONNEGATIVE, default=0, help="noise seed")
    demo.set_defaults(func=_cmd_demo)
