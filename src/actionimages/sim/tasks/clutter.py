"""The scene around a task: the clutter pool (visual-only distractor objects, the train shapes and
the heldout shapes) that every task's model carries, so that one compiled model serves all splits.

:func:`scene_objects_xml` gives a task's bodies plus the pool (when the env builds its model);
:func:`place_clutter` parks the pool and stands the split's distractors on the table (at reset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.errors import ActionImagesError
from actionimages.sim.tasks.base import PARK, PARK_POS, Task, set_body_colour
from actionimages.sim.variations import (
    HELDOUT_DISTRACTORS,
    TABLE_CLUTTER_X,
    TABLE_CLUTTER_Y,
    TRAIN_DISTRACTORS,
)

if TYPE_CHECKING:
    from actionimages.sim.variations import Variation

CLUTTER_XML = {
    "box": '<geom type="box" size="0.03 0.045 0.025" pos="0 0 0.025"/>',
    "sphere": '<geom type="sphere" size="0.03" pos="0 0 0.03"/>',
    "cylinder": '<geom type="cylinder" size="0.025 0.04" pos="0 0 0.04"/>',
    "capsule": '<geom type="capsule" size="0.02 0.035" pos="0 0 0.055"/>',
    "ellipsoid": '<geom type="ellipsoid" size="0.05 0.03 0.022" pos="0 0 0.022"/>',
    "mug": '<geom type="cylinder" size="0.03 0.035" pos="0 0 0.035"/>'
    '<geom type="box" size="0.008 0.015 0.018" pos="0.035 0 0.04"/>',
}
CLUTTER_MIN_GAP = 0.14  # distance (m) on the table between a distractor and any other object


def clutter_xml() -> str:
    """Static, visual-only distractor bodies (they never collide, so they cannot spoil an expert)."""
    out = []
    for kind in TRAIN_DISTRACTORS + HELDOUT_DISTRACTORS:
        geoms = CLUTTER_XML[kind].replace("<geom ", '<geom contype="0" conaffinity="0" rgba="0.5 0.5 0.5 1" ')
        out.append(f'<body name="clutter_{kind}" pos="{PARK_POS}">{geoms}</body>')
    return "\n".join(out)


def scene_objects_xml(task: Task) -> str:
    """The task's objects plus the shared clutter pool."""
    return task.objects_xml() + "\n" + clutter_xml()


def _clutter_body(model: mujoco.MjModel, kind: str) -> int:
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"clutter_{kind}")
    if bid < 0:
        raise ActionImagesError(f"scene has no body named 'clutter_{kind}': build it with scene_objects_xml")
    return bid


def place_clutter(
    model: mujoco.MjModel,
    rng: np.random.Generator,
    var: Variation,
    avoid: list[np.ndarray],
    named_colour: str | None,
    cap: int | None = None,
) -> list[str]:
    """Park every clutter body, then stand 0-3 of the split's kinds (at most ``cap``) on table spots
    clear of ``avoid`` (positions, (x, y) or (x, y, z)), in colours other than ``named_colour`` (the
    object the instruction names). Returns the kinds placed."""
    taken = [a[:2] for a in avoid]
    for kind in TRAIN_DISTRACTORS + HELDOUT_DISTRACTORS:
        model.body_pos[_clutter_body(model, kind)] = PARK
    n = int(rng.integers(var.n_distractors[0], var.n_distractors[1] + 1))
    n = n if cap is None else min(n, cap)
    kinds = list(rng.choice(var.distractors, size=n, replace=False)) if n else []
    placed = []
    # The instruction names one object by colour: no distractor may share that colour.
    colours = [rgb for name, rgb in var.colours.items() if name != named_colour]
    for kind in kinds:
        for _ in range(200):
            xy = np.array([rng.uniform(*TABLE_CLUTTER_X), rng.uniform(*TABLE_CLUTTER_Y)])
            if all(np.linalg.norm(xy - t) > CLUTTER_MIN_GAP for t in taken):
                break
        else:
            continue
        taken.append(xy)
        bid = _clutter_body(model, kind)
        model.body_pos[bid] = [xy[0], xy[1], 0.0]
        model.body_quat[bid] = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi)).as_quat(scalar_first=True)
        set_body_colour(model, bid, colours[int(rng.integers(len(colours)))])
        placed.append(str(kind))
    return placed
