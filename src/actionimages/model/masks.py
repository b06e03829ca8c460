"""Segment layout and mask modes (METHOD.md §4).

Latent time holds ``2V`` segments of ``f`` latent frames each, view-major:
``[view1 RGB | view1 action | view2 RGB | view2 action | ...]``. A mask gives every latent frame
one state:

- ``GIVEN``: clean conditioning (timestep 0), no loss;
- ``GENERATE``: noised and denoised, the only frames the loss counts;
- ``ABSENT``: not part of this task; filled with pure noise at the maximal timestep and never
  integrated or scored. Keeping absent segments in the sequence (rather than dropping them) lets
  one batch mix modes and data with and without actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from actionimages.errors import ActionImagesError

GIVEN, GENERATE, ABSENT = 0, 1, 2

MODES = ("joint", "a2v", "v2a", "video", "i2a", "view1")
"""Mask modes: ``joint`` (i2va, the policy), ``a2v`` (action-conditioned video / world model),
``v2a`` (video-to-action labelling), ``video`` (video only; for data without actions), ``i2a``
(first RGB frame -> actions), ``view1`` (view 1's RGB clip given, the rest as joint)."""


def mode_states(mode: str, num_views: int, latent_frames: int) -> torch.Tensor:
    """States (2V, f) int64 of one mode; rows are segments in layout order."""
    if mode not in MODES:
        raise ActionImagesError(f"unknown mask mode {mode!r}; known: {MODES}")
    f = latent_frames
    first_given = torch.full((f,), GENERATE, dtype=torch.long)
    first_given[0] = GIVEN
    all_given = torch.full((f,), GIVEN, dtype=torch.long)
    all_gen = torch.full((f,), GENERATE, dtype=torch.long)
    absent = torch.full((f,), ABSENT, dtype=torch.long)
    only_first = absent.clone()
    only_first[0] = GIVEN
    rgb, act = {
        "joint": (first_given, first_given),
        "a2v": (first_given, all_given),
        "v2a": (all_given, all_gen),
        "video": (first_given, absent),
        "i2a": (only_first, first_given),
        "view1": (first_given, first_given),
    }[mode]
    rows = []
    for v in range(num_views):
        r = all_given if (mode == "view1" and v == 0) else rgb
        rows += [r, act]
    return torch.stack(rows)


def sample_modes(
    mix: Mapping[str, float],
    has_actions: Sequence[bool] | torch.Tensor,
    generators: Sequence[torch.Generator],
) -> list[str]:
    """One mode per sample: drawn from ``mix`` if it has actions, else ``"video"`` (needs no actions)."""
    names = [m for m in MODES if mix.get(m, 0.0) > 0]
    unknown = set(mix) - set(MODES)
    if unknown:
        raise ActionImagesError(f"unknown modes in mask mix: {sorted(unknown)}")
    if not names:
        raise ActionImagesError("mask mix has no positive probability")
    probs = torch.tensor([float(mix[m]) for m in names], dtype=torch.float64)
    if (probs < 0).any():
        raise ActionImagesError("mask mix probabilities must be >= 0")
    cdf = torch.cumsum(probs / probs.sum(), 0)
    out = []
    for has, gen in zip(has_actions, generators, strict=True):
        u = torch.rand((), generator=gen, dtype=torch.float64)
        out.append(names[min(int(torch.searchsorted(cdf, u)), len(names) - 1)] if bool(has) else "video")
    return out
