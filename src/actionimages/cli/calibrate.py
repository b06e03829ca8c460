"""``actionimages calibrate``: camera intrinsics and eye-to-hand extrinsics from a ChArUco board.

- ``intrinsics``: one camera's pinhole intrinsics from photos of the board (``cv2.calibrateCamera``).
- ``extrinsics``: fixed cameras' camera-to-base transforms from photos of the board held by the
  gripper and the robot's end-effector poses; writes the calibration file (docs/CALIBRATION.md).
- ``sim-check``: the whole procedure on simulator renders, compared with the sim's true cameras.
- ``overlay``: a gripper pose's action image drawn over a camera photo, to check a calibration by eye.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

from actionimages.cli.ranges import COUNT, NONNEGATIVE
from actionimages.errors import ActionImagesError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _print(obj: dict) -> None:
    print(json.dumps(obj, indent=2))


# --------------------------------------------------------------------------- inputs
def image_files(spec: str | Path) -> list[Path]:
    """Images of a directory (sorted), or of a glob pattern; an error when there are none."""
    p = Path(spec)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    else:
        files = sorted(Path(f) for f in glob.glob(str(spec)) if Path(f).suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ActionImagesError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {spec}")
    return files


def read_poses(path: str | Path) -> np.ndarray:
    """End-effector poses (N, 4, 4) from JSON: a list (or ``{"poses": list}``) of ``[x, y, z, rx, ry,
    rz(, openness)]`` (metres, SciPy extrinsic xyz Euler radians, the actions' convention) or 4×4
    end-effector-to-base matrices."""
    from actionimages.calibrate.solve import make_transform
    from actionimages.codec.poses import euler_to_matrix

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ActionImagesError(f"cannot read the poses file {path}: {exc}") from exc
    poses = data.get("poses") if isinstance(data, dict) else data
    if not isinstance(poses, list) or not poses:
        raise ActionImagesError(
            f"poses file {path} must hold a non-empty list of poses (or {{'poses': [...]}})"
        )
    out = []
    for i, p in enumerate(poses):
        try:
            a = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ActionImagesError(f"poses file {path}: pose {i} is not numeric: {exc}") from exc
        if not np.all(np.isfinite(a)):
            raise ActionImagesError(f"poses file {path}: pose {i} has NaN or inf")
        if a.shape in ((6,), (7,)):
            out.append(make_transform(euler_to_matrix(a[3:6]), a[:3]))
        elif a.shape == (4, 4):
            R = a[:3, :3]
            if np.abs(R.T @ R - np.eye(3)).max() > 1e-4 or np.abs(a[3] - [0, 0, 0, 1]).max() > 1e-6:
                raise ActionImagesError(f"poses file {path}: pose {i} is not a rigid 4×4 transform")
            out.append(a)
        else:
            raise ActionImagesError(
                f"poses file {path}: pose {i} has shape {a.shape}; need [x,y,z,rx,ry,rz] or a 4×4 matrix"
            )
    return np.stack(out)


def _index(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError as exc:
        raise ActionImagesError(
            f"image {path} is not named by its pose index (e.g. 000.png for the first pose)"
        ) from exc


def _intrinsics_for(specs: list[str] | None, cameras: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for s in specs or []:
        if "=" in s:
            cam, f = s.split("=", 1)
            out[cam] = Path(f)
        elif Path(s).is_dir():
            out.update({c: Path(s) / f"{c}.json" for c in cameras if (Path(s) / f"{c}.json").is_file()})
        else:
            raise ActionImagesError(
                f"--intrinsics {s!r} is neither CAMERA=FILE nor a directory of CAMERA.json"
            )
    unknown = sorted(set(out) - set(cameras))
    if unknown:
        raise ActionImagesError(f"--intrinsics names cameras with no images: {unknown}; cameras: {cameras}")
    return out


# --------------------------------------------------------------------------- commands
def run_intrinsics(args: argparse.Namespace) -> int:
    from actionimages.atomic import write_json_atomic
    from actionimages.calibrate import BoardDetector, BoardSpec, calibrate_intrinsics, read_image
    from actionimages.calibrate.files import now_iso

    board = BoardSpec.parse(args.board)
    detector = BoardDetector(board)
    files = image_files(args.images)
    detections, size = [], None
    for f in files:
        img = read_image(f)
        if size is None:
            size = (img.shape[1], img.shape[0])
        elif size != (img.shape[1], img.shape[0]):
            raise ActionImagesError(
                f"{f} is {img.shape[1]}×{img.shape[0]}, the first image {size[0]}×{size[1]}"
            )
        detections.append(detector.detect(img))
    intr = calibrate_intrinsics(detections, *size, min_views=args.min_views, what=str(args.images))
    content = {
        **intr.to_dict(),
        "board": board.to_dict(),
        "images": [str(f) for f in files],
        "created": now_iso(),
    }
    write_json_atomic(args.out, content, indent=2)
    _print(
        {
            "out": str(args.out),
            "reprojection_px": intr.reprojection_px,
            "reprojection_px_distortion_model": intr.reprojection_px_distortion_model,
            "views": intr.views,
            "images": len(files),
            "K": intr.K.tolist(),
        }
    )
    return 0


def run_extrinsics(args: argparse.Namespace) -> int:
    from actionimages.calibrate import (
        BoardDetector,
        BoardSpec,
        CameraViews,
        Intrinsics,
        calibrate_extrinsics,
        calibration_dict,
        read_image,
        save_calibration,
    )

    board = BoardSpec.parse(args.board)
    detector = BoardDetector(board)
    poses = read_poses(args.poses)
    root = Path(args.images)
    if not root.is_dir():
        raise ActionImagesError(f"--images {root} is not a directory of CAMERA/INDEX.png folders")
    cameras = (
        args.cameras.split(",") if args.cameras else sorted(d.name for d in root.iterdir() if d.is_dir())
    )
    if not cameras:
        raise ActionImagesError(f"--images {root} holds no camera folders")
    given = _intrinsics_for(args.intrinsics, cameras)
    views = {}
    for cam in cameras:
        if not (root / cam).is_dir():
            raise ActionImagesError(f"no folder {root / cam} for camera {cam!r}")
        dets, size = {}, None
        for f in image_files(root / cam):
            img = read_image(f)
            if size is None:
                size = (img.shape[1], img.shape[0])
            elif size != (img.shape[1], img.shape[0]):
                raise ActionImagesError(f"{f} is not {size[0]}×{size[1]} like camera {cam!r}'s other images")
            dets[_index(f)] = detector.detect(img)
        K = None
        if cam in given:
            try:
                intr = Intrinsics.from_dict(json.loads(given[cam].read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ActionImagesError(f"cannot read intrinsics {given[cam]}: {exc}") from exc
            if (intr.width, intr.height) != size:
                raise ActionImagesError(
                    f"intrinsics {given[cam]} are for {intr.width}×{intr.height}, camera {cam!r}'s images "
                    f"are {size[0]}×{size[1]}"
                )
            K = intr.K
        views[cam] = CameraViews(size[0], size[1], dets, K)
    result = calibrate_extrinsics(views, poses, refine_intrinsics=True if args.refine_intrinsics else None)
    extra = {
        c: {"views": result.views_used[c], "max_residual_px": result.max_residual_px[c]} for c in cameras
    }
    content = calibration_dict(
        result.cameras,
        result.reprojection_px,
        board.to_dict(),
        extra,
        method="eye-to-hand: PnP + Park-Martin AY=YB + joint bundle adjustment",
        board_in_ee=result.board_in_ee.tolist(),
        intrinsics={c: ("given" if c in given else "estimated") for c in cameras},
    )
    save_calibration(args.out, content)
    _print(
        {
            "out": str(args.out),
            "reprojection_px": result.reprojection_px,
            "views": result.views_used,
            "centres_m": {c: [round(float(v), 4) for v in cam.center] for c, cam in result.cameras.items()},
        }
    )
    return 0


def run_sim_check(args: argparse.Namespace) -> int:
    from actionimages.calibrate.sim import sim_check

    cameras = [c for spec in args.camera or [] for c in spec.split(",") if c] or None
    result = sim_check(
        seed=args.seed,
        cameras=cameras,
        poses=args.poses,
        image_size=args.image_size,
        board=args.board,
        intrinsic_views=args.intrinsic_views,
        known_intrinsics=args.known_intrinsics,
        refine_intrinsics=args.refine_intrinsics,
        save_dir=args.save,
    )
    print(json.dumps(result))
    if not result["passed"]:
        print("calibrate sim-check: a target was missed (see 'targets')", file=sys.stderr)
    return 0 if result["passed"] else 1


def run_overlay(args: argparse.Namespace) -> int:
    from actionimages.calibrate.overlay import overlay_file

    _print(overlay_file(args.calibration, args.camera, args.image, args.pose, args.out))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from actionimages.calibrate.board import DEFAULT_BOARD

    board_help = f"ChArUco board COLSxROWS:SQUARE_M:MARKER_M[:DICT] or a JSON file (default {DEFAULT_BOARD})"
    p = subparsers.add_parser(
        "calibrate",
        help="camera calibration from a ChArUco board (intrinsics, eye-to-hand extrinsics, sim check)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    sub = p.add_subparsers(dest="calibrate_command", metavar="ACTION", required=True)

    i = sub.add_parser("intrinsics", help="one camera's pinhole intrinsics from photos of the board")
    i.add_argument("--images", required=True, help="a directory of images or a glob pattern (quote it)")
    i.add_argument("--board", default=DEFAULT_BOARD, help=board_help)
    i.add_argument("--out", required=True, help="intrinsics JSON to write")
    i.add_argument("--min-views", type=COUNT, default=4, help="images the board must be found in (default 4)")
    i.set_defaults(func=run_intrinsics)

    e = sub.add_parser(
        "extrinsics",
        help="fixed cameras' poses from photos of the board held by the gripper (eye-to-hand)",
        description="IMAGES/CAMERA/INDEX.png is camera CAMERA's photo at pose INDEX of --poses (0-based).",
    )
    e.add_argument(
        "--poses", required=True, help="JSON: end-effector poses [x,y,z,rx,ry,rz] or 4×4, base frame"
    )
    e.add_argument("--images", required=True, help="directory with one folder of photos per camera")
    e.add_argument("--board", default=DEFAULT_BOARD, help=board_help)
    e.add_argument("--cameras", help="comma-separated camera folders (default: all)")
    e.add_argument(
        "--intrinsics",
        action="append",
        help="CAMERA=FILE from 'calibrate intrinsics', or a directory of CAMERA.json (repeatable); "
        "cameras without are calibrated from these photos",
    )
    e.add_argument(
        "--refine-intrinsics",
        action="store_true",
        help="also refine given intrinsics in the bundle adjustment",
    )
    e.add_argument("--out", required=True, help="calibration file to write (JSON)")
    e.set_defaults(func=run_extrinsics)

    s = sub.add_parser(
        "sim-check",
        help="run the procedure on sim renders; print the errors against the sim's true cameras",
        description="Prints one JSON object; exits 1 when a target (0.5 px, 5 mm, 0.5°) is missed.",
    )
    s.add_argument("--seed", type=NONNEGATIVE, default=0)
    s.add_argument(
        "--camera", action="append", help="fixed camera(s) to check, repeatable or comma-separated"
    )
    s.add_argument("--poses", type=COUNT, default=16, help="robot poses of the held board (default 16)")
    s.add_argument("--image-size", type=COUNT, default=512, help="square render size (default 512, max 1024)")
    s.add_argument(
        "--intrinsic-views", type=COUNT, default=12, help="free-board views per camera (default 12)"
    )
    s.add_argument("--known-intrinsics", action="store_true", help="use the sim's K instead of step 1")
    s.add_argument("--refine-intrinsics", action="store_true", help="refine K in the bundle adjustment")
    s.add_argument("--board", default=DEFAULT_BOARD, help=board_help)
    s.add_argument("--save", help="directory for the renders, poses, intrinsics and calibration files")
    s.set_defaults(func=run_sim_check)

    o = sub.add_parser("overlay", help="draw a gripper pose's action image over a camera photo")
    o.add_argument("--calibration", required=True, help="calibration file")
    o.add_argument("--camera", required=True, help="camera name in the calibration file")
    o.add_argument("--image", required=True, help="a photo from that camera")
    o.add_argument(
        "--pose",
        required=True,
        help="x,y,z,rx,ry,rz[,openness] in the base frame (write --pose=-0.1,... "
        "when it starts with a minus)",
    )
    o.add_argument("--out", required=True, help="PNG to write")
    o.set_defaults(func=run_overlay)
