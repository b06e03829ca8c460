"""The calibration file: what datasets, ``collect`` and the policy server read for a camera rig.

JSON::

    {
      "cameras": {NAME: {"K": 3×3, "cam_to_world": 4×4, "width": W, "height": H,
                         "reprojection_px": RMS px, ...}},
      "board": {"cols": .., "rows": .., "square": m, "marker": m, "dictionary": ..},
      "created": ISO-8601 time, ...
    }

``cam_to_world`` is the camera-to-robot-base transform in OpenCV's camera convention (x right, y
down, z forward); ``K`` the pinhole intrinsics at ``width × height``. Each camera's entry is
:meth:`Camera.to_dict` plus what the calibration measured; :func:`load_calibration` turns the file
back into :class:`Camera` objects.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from actionimages.atomic import write_json_atomic
from actionimages.codec.camera import Camera
from actionimages.errors import ActionImagesError

FORMAT_VERSION = 1


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def calibration_dict(
    cameras: Mapping[str, Camera],
    reprojection_px: Mapping[str, float],
    board: Mapping[str, Any] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """The calibration file's content: ``extra[name]`` adds to a camera's entry, ``top`` to the file."""
    out: dict[str, Any] = {"format_version": FORMAT_VERSION, "cameras": {}}
    for name, cam in cameras.items():
        entry = cam.to_dict()
        entry["reprojection_px"] = float(reprojection_px[name])
        entry.update((extra or {}).get(name, {}))
        out["cameras"][name] = entry
    out["board"] = dict(board or {})
    out["created"] = now_iso()
    out.update(top)
    return out


def save_calibration(path: str | Path, content: Mapping[str, Any]) -> None:
    """Write a calibration file atomically (a reader never sees half of it)."""
    write_json_atomic(path, dict(content), indent=2)


def read_calibration(path: str | Path) -> dict[str, Any]:
    """The calibration file's JSON, checked to have a ``cameras`` mapping."""
    p = Path(path)
    if not p.is_file():
        raise ActionImagesError(f"calibration file {p} does not exist")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ActionImagesError(f"calibration file {p} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict) or not data["cameras"]:
        raise ActionImagesError(
            f"calibration file {p} has no 'cameras' mapping of camera name to calibration"
        )
    return data


def load_calibration(path: str | Path, cameras: Iterable[str] | None = None) -> dict[str, Camera]:
    """The cameras of a calibration file, ``{name: Camera}`` (all of them, or the ``cameras`` named).

    Raises :class:`ActionImagesError` naming the file and camera for a missing file, a camera not in
    the file (with the ones that are) or a bad matrix.
    """
    data = read_calibration(path)
    entries = data["cameras"]
    names = list(entries) if cameras is None else list(cameras)
    missing = [n for n in names if n not in entries]
    if missing:
        raise ActionImagesError(
            f"calibration file {path} has no camera {', '.join(map(repr, missing))}; it has {sorted(entries)}"
        )
    out = {}
    for n in names:
        if not isinstance(entries[n], dict):
            raise ActionImagesError(f"calibration file {path}: camera {n!r} is not an object")
        try:
            out[n] = Camera.from_dict(entries[n])
        except (ActionImagesError, TypeError, ValueError) as exc:
            raise ActionImagesError(f"calibration file {path}: camera {n!r}: {exc}") from exc
    return out


def camera_for_image(camera: Camera, width: int, height: int, name: str = "the camera") -> Camera:
    """``camera`` (calibrated at its ``width × height``) for images of ``width × height`` pixels.

    The same size gives the camera back; a resize that keeps the aspect ratio (e.g. a 1280×720
    calibration for 640×360 recordings) scales ``K`` (:meth:`Camera.crop_resize`). Any other size
    raises :class:`ActionImagesError` naming ``name`` and both sizes: the intrinsics would then
    depend on how the images were cropped, which the file cannot know.
    """
    width, height = int(width), int(height)
    if (camera.width, camera.height) == (width, height):
        return camera
    if abs(camera.width / camera.height - width / height) > 1e-3:
        raise ActionImagesError(
            f"the image is {width}×{height} but {name} was calibrated at {camera.width}×{camera.height}, "
            "a different aspect ratio: use images from that camera at its calibrated size (or recalibrate)"
        )
    return camera.crop_resize(width, height)
