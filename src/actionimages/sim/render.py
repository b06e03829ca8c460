"""Headless offscreen rendering of a MuJoCo model's fixed cameras.

A thin layer over MuJoCo's low-level ``mjr_*`` API with its own GL context, chosen from
``MUJOCO_GL`` at renderer creation (``egl`` unless set otherwise). It does not depend on which
backend ``mujoco`` picked at import time, so it works even when a caller imported ``mujoco``
before :mod:`actionimages.sim`. Shadows, reflections and the skybox are switched off for speed.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from actionimages.errors import ActionImagesError


def _gl_context_class():
    backend = os.environ.get("MUJOCO_GL", "egl").lower().strip() or "egl"
    try:
        if backend == "osmesa":
            from mujoco.osmesa import GLContext
        elif backend in ("glfw", "glx"):
            from mujoco.glfw import GLContext
        else:
            from mujoco.egl import GLContext
    except (ImportError, RuntimeError, OSError) as exc:
        raise ActionImagesError(
            f"cannot load the {backend!r} OpenGL backend for headless rendering ({exc}); install Mesa's EGL "
            "(Debian: libegl1 libegl-mesa0 libgl1-mesa-dri, see scripts/install_sysdeps.sh) or set MUJOCO_GL"
        ) from exc
    return GLContext


class OffscreenRenderer:
    """Renders ``model``'s cameras at ``width×height`` into uint8 RGB arrays (H, W, 3)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, max_geom: int = 2000) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ActionImagesError(
                f"image {width}×{height} exceeds the model's offscreen buffer "
                f"{model.vis.global_.offwidth}×{model.vis.global_.offheight}"
            )
        self.model, self.width, self.height = model, int(width), int(height)
        self._ctx = _gl_context_class()(self.width, self.height)
        self._ctx.make_current()
        self._scene = mujoco.MjvScene(model, maxgeom=max_geom)
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            self._scene.flags[flag] = 0
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._opt = mujoco.MjvOption()
        self._pert = mujoco.MjvPerturb()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)

    def _draw(self, data: mujoco.MjData, camera: str, segmentation: bool) -> None:
        cid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cid < 0:
            raise ActionImagesError(f"model has no camera named {camera!r}")
        self._ctx.make_current()
        self._cam.fixedcamid = cid
        mujoco.mjv_updateScene(
            self.model, data, self._opt, self._pert, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = int(segmentation)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = int(segmentation)
        mujoco.mjr_render(self._rect, self._scene, self._con)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._con)

    def render(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        """RGB image uint8 (H, W, 3) of ``camera`` in ``data``'s state (its kinematics must be current)."""
        self._draw(data, camera, segmentation=False)
        return np.flipud(self._rgb).copy()  # OpenGL's first row is the bottom one

    def render_geom_ids(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        """Per-pixel geom id int (H, W); -1 where no geom is seen (background)."""
        self._draw(data, camera, segmentation=True)
        rgb = np.flipud(self._rgb).astype(np.int64)
        seg = rgb[..., 0] + rgb[..., 1] * 256 + rgb[..., 2] * 65536 - 1  # index into the scene's geoms
        out = np.full(seg.shape, -1, dtype=np.int64)
        ngeom = self._scene.ngeom
        valid = (seg >= 0) & (seg < ngeom)
        objid = np.array([self._scene.geoms[i].objid for i in range(ngeom)], dtype=np.int64)
        objtype = np.array([self._scene.geoms[i].objtype for i in range(ngeom)], dtype=np.int64)
        is_geom = np.zeros(seg.shape, dtype=bool)
        is_geom[valid] = objtype[seg[valid]] == int(mujoco.mjtObj.mjOBJ_GEOM)
        out[is_geom] = objid[seg[is_geom]]
        return out

    def close(self) -> None:
        """Free the GL resources (safe to call twice)."""
        if self._con is not None:
            self._con.free()
            self._con = None
        if self._ctx is not None:
            self._ctx.free()
            self._ctx = None

    def __del__(self) -> None:  # a forgotten close() must not leak the context
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down GL already
            pass
