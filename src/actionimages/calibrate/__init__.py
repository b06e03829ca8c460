"""Camera calibration: ChArUco intrinsics, eye-to-hand extrinsics, the calibration file, sim proof.

``actionimages calibrate`` (see :mod:`actionimages.cli.calibrate`) wraps these. OpenCV is imported
only when a board is made or detected.
"""

from actionimages.calibrate.board import DEFAULT_BOARD, BoardDetector, BoardSpec, Detection, read_image
from actionimages.calibrate.files import (
    calibration_dict,
    camera_for_image,
    load_calibration,
    read_calibration,
    save_calibration,
)
from actionimages.calibrate.solve import (
    CameraViews,
    ExtrinsicsResult,
    Intrinsics,
    calibrate_extrinsics,
    calibrate_intrinsics,
    pose_errors,
)

__all__ = [
    "DEFAULT_BOARD",
    "BoardDetector",
    "BoardSpec",
    "CameraViews",
    "Detection",
    "ExtrinsicsResult",
    "Intrinsics",
    "calibrate_extrinsics",
    "calibrate_intrinsics",
    "calibration_dict",
    "camera_for_image",
    "load_calibration",
    "pose_errors",
    "read_calibration",
    "read_image",
    "save_calibration",
]
