"""The action-image codec: 7-DoF end-effector actions <-> multiview Gaussian-heatmap images."""

from actionimages.codec.camera import Camera, as_camera, camera_ring, center_crop_box
from actionimages.codec.codec import ActionImageCodec, DecodeResult
from actionimages.codec.poses import (
    actions_to_matrices,
    euler_to_matrix,
    euler_to_quat,
    euler_to_rot6d,
    matrix_to_euler,
    matrix_to_quat,
    matrix_to_rot6d,
    quat_to_euler,
    quat_to_matrix,
    rot6d_to_matrix,
    rotation_angle_between,
    rotation_from_points,
    semantic_points,
    to_euler_actions,
)
from actionimages.codec.reference import ReferenceResult, ReleaseDecoder

__all__ = [
    "ActionImageCodec",
    "Camera",
    "DecodeResult",
    "ReferenceResult",
    "ReleaseDecoder",
    "as_camera",
    "camera_ring",
    "center_crop_box",
    "actions_to_matrices",
    "euler_to_matrix",
    "euler_to_quat",
    "euler_to_rot6d",
    "matrix_to_euler",
    "matrix_to_quat",
    "matrix_to_rot6d",
    "quat_to_euler",
    "quat_to_matrix",
    "rot6d_to_matrix",
    "rotation_angle_between",
    "rotation_from_points",
    "semantic_points",
    "to_euler_actions",
]
