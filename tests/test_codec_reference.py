"""The re-implemented release decoder: works as described, and is less accurate than ours."""

from __future__ import annotations

import numpy as np
import pytest

from actionimages.codec import ActionImageCodec, Camera, ReleaseDecoder, euler_to_matrix
from actionimages.errors import ActionImagesError

CENTER = np.array([0.5, 0.0, 0.3])


def _rig(size: int) -> list[Camera]:
    eyes = [CENTER + [1.0, -0.8, 0.8], CENTER + [1.0, 0.8, 0.9]]
    return [Camera.look_at(e, CENTER, fov_y_deg=50, width=size, height=size) for e in eyes]


def test_release_decoder_recovers_position_and_direction_coarsely() -> None:
    cams = _rig(96)
    codec = ActionImageCodec(cams)
    rng = np.random.default_rng(0)
    from scipy.spatial.transform import Rotation

    n = 8
    a = np.concatenate(
        [
            CENTER + rng.uniform(-0.15, 0.15, (n, 3)),
            Rotation.random(n, random_state=1).as_euler("xyz"),
            np.ones((n, 1)),
        ],
        1,
    )
    img = codec.encode(a)
    d = [np.linalg.norm(CENTER - c.center) for c in cams]
    ref = ReleaseDecoder(cams, depth_range=(d[0] - 0.5, d[0] + 0.5), num_depths=64)
    rr = ref.decode(img)
    assert rr.positions.shape == (n, 3) and rr.directions.shape == (n, 3) and rr.scores.shape == (n, 2)
    pos_ref = np.linalg.norm(rr.positions - a[:, :3], axis=1)
    x_true = euler_to_matrix(a[:, 3:6])[..., 0]
    dir_ref = np.degrees(np.arccos(np.clip(np.sum(rr.directions * x_true, -1), -1, 1)))
    # 64 depths over 1 m: ~16 mm steps, so errors of a centimetre or so, not metres.
    assert np.median(pos_ref) < 0.03 and np.median(dir_ref) < 20
    ours = codec.decode(img)
    pos_ours = np.linalg.norm(ours.actions[:, :3] - a[:, :3], axis=1)
    assert np.median(pos_ours) < np.median(pos_ref) / 100


def test_release_decoder_rejects_bad_input() -> None:
    cams = _rig(32)
    with pytest.raises(ActionImagesError, match="two"):
        ReleaseDecoder(cams[:1])
    with pytest.raises(ActionImagesError, match="near < far"):
        ReleaseDecoder(cams, depth_range=(2.0, 1.0))
    with pytest.raises(ActionImagesError, match="shape"):
        ReleaseDecoder(cams).decode(np.zeros((2, 3, 16, 16, 3), np.float32))
