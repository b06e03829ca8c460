"""Splits and their variations: colours, object regions, distractors and camera placements.

``train`` draws colours from :data:`TRAIN_COLOURS`, task objects from the table's main region,
distractors from the train pool, and uses the canonical cameras. ``test`` is the same distribution
on scenes that ``train`` can never produce: each split draws its scenes from its own random stream
(:func:`scene_stream`), so disjointness holds by construction, as RLBench evaluates new episodes of
the trained variations. It is the headline split. ``heldout`` changes all three object factors
(unseen colours, a disjoint strip of the table, unseen distractor shapes) and keeps the cameras;
``heldout_cameras`` shows ``test``'s scenes and moves every fixed camera to a placement outside the
train one (rotated 15-35° about the workspace, raised or lowered, nearer or farther).

In every split the named object's colour is unique in its scene (no distractor shares it), so the
instruction names exactly one object.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from actionimages.errors import ActionImagesError
from actionimages.sim.scene import FIXED_CAMERAS, CameraSpec

SPLITS: tuple[str, ...] = ("train", "test", "heldout", "heldout_cameras")

# RLBench's colour names; the two sets are disjoint, so heldout colours never appear in training.
TRAIN_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "cyan": (0.10, 0.85, 0.85),
    "magenta": (0.85, 0.10, 0.85),
    "orange": (1.00, 0.50, 0.00),
    "purple": (0.50, 0.10, 0.60),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.08),
}
HELDOUT_COLOURS: dict[str, tuple[float, float, float]] = {
    "maroon": (0.50, 0.00, 0.00),
    "navy": (0.00, 0.00, 0.50),
    "olive": (0.50, 0.50, 0.00),
    "teal": (0.00, 0.50, 0.50),
    "azure": (0.00, 0.50, 1.00),
    "violet": (0.93, 0.51, 0.93),
    "rose": (1.00, 0.00, 0.50),
    "silver": (0.75, 0.75, 0.75),
}

# Task objects' primary position: y in the main region for train, a disjoint strip for heldout.
TRAIN_Y = (-0.26, 0.10)
HELDOUT_Y = (0.16, 0.28)
TABLE_CLUTTER_X = (0.25, 0.75)  # where distractors may stand
TABLE_CLUTTER_Y = (-0.40, 0.40)

TRAIN_DISTRACTORS = ("box", "sphere", "cylinder")
HELDOUT_DISTRACTORS = ("capsule", "ellipsoid", "mug")


@dataclass(frozen=True)
class Variation:
    """What a split allows; one per episode is drawn by :meth:`sample_*` helpers with the episode's RNG."""

    split: str
    colours: dict[str, tuple[float, float, float]]
    y_range: tuple[float, float]
    distractors: tuple[str, ...]
    n_distractors: tuple[int, int]  # inclusive range
    novel_cameras: bool

    def colour_names(self, rng: np.random.Generator, n: int) -> list[str]:
        """``n`` distinct colour names of this split."""
        names = list(self.colours)
        return [names[i] for i in rng.choice(len(names), size=n, replace=False)]

    def primary_xy(
        self, rng: np.random.Generator, x_range: tuple[float, float], margin: float = 0.0
    ) -> np.ndarray:
        """A position (2,) for the task's main object in this split's region (shrunk by ``margin``)."""
        lo, hi = self.y_range[0] + margin, self.y_range[1] - margin
        return np.array([rng.uniform(*x_range), rng.uniform(lo, max(lo, hi))])


def variation_for(split: str) -> Variation:
    """The :class:`Variation` of ``split``; an unknown split names the valid ones."""
    if split in ("train", "test", "heldout_cameras"):
        return Variation(split, TRAIN_COLOURS, TRAIN_Y, TRAIN_DISTRACTORS, (0, 2), split == "heldout_cameras")
    if split == "heldout":
        return Variation(split, HELDOUT_COLOURS, HELDOUT_Y, HELDOUT_DISTRACTORS, (1, 3), False)
    raise ActionImagesError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")


# The stream a split's scenes (objects, colours, distractors) come from. heldout_cameras reuses
# test's scenes, so the two differ only in the cameras.
_SCENE_STREAM = {"train": "train", "test": "test", "heldout": "heldout", "heldout_cameras": "test"}


def scene_stream(task: str, split: str, seed: int, part: str = "objects") -> np.random.Generator:
    """The random generator of episode ``seed`` of ``task`` on ``split`` for one ``part`` of the scene
    (``objects`` or ``cameras``). Keyed by names, never by list positions, so adding a task or a
    split changes no other task's scenes; different splits' streams never meet."""
    if split not in _SCENE_STREAM:
        raise ActionImagesError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
    if seed < 0:
        raise ActionImagesError(f"episode seeds are non-negative, got {seed}")
    key = f"actionimages.sim/{task}/{_SCENE_STREAM[split]}/{part}"
    return np.random.default_rng([zlib.crc32(key.encode()), len(key), int(seed)])


def novel_camera_specs(rng: np.random.Generator) -> list[CameraSpec]:
    """Camera placements never used in training: each fixed camera orbits its target by ±15-35°
    in azimuth, and its height and distance change by 12-30% (both up or both down)."""
    out = []
    for spec in FIXED_CAMERAS:
        eye, target = np.array(spec.eye), np.array(spec.target)
        rel = eye - target
        az = np.deg2rad(rng.uniform(15.0, 35.0)) * rng.choice([-1.0, 1.0])
        c, s = np.cos(az), np.sin(az)
        rel = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1], rel[2]])
        # raised and farther, or lowered and nearer: opposite signs could cancel for the overhead camera
        sign = rng.choice([-1.0, 1.0])
        rel[2] *= 1.0 + rng.uniform(0.12, 0.30) * sign
        rel *= 1.0 + rng.uniform(0.12, 0.25) * sign
        rel[2] = max(rel[2], 0.25)  # stay above the table
        fovy = spec.fovy * rng.uniform(0.9, 1.1)
        out.append(CameraSpec(spec.name, tuple(target + rel), tuple(target), float(fovy)))
    return out
