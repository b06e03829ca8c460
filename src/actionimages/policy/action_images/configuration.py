"""How the action-image policy plans: one frozen config that validates itself.

``eval``, ``serve`` and ``ladder`` generate their planning flags from these fields
(:func:`actionimages.cli.config_args.add_dataclass_flags`), and the same names travel, unchanged,
from the flag to :class:`~actionimages.policy.action_images.policy.ActionImagePolicy` and to the
decoder: ``--decode-tolerance-px`` is ``decode_tolerance_px`` everywhere on the way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from actionimages.errors import ActionImagesError

MODES = ("joint", "i2a")


@dataclass(frozen=True)
class PlanningConfig:
    """Sampling and decoding options of one plan."""

    num_steps: int = field(default=8, metadata={"help": "sampling (Euler) steps per plan (default 8)"})
    guidance: float = field(default=1.0, metadata={"help": "classifier-free guidance scale (1 = off)"})
    mode: str = field(
        default="joint",
        metadata={
            "choices": MODES,
            "help": "generate observation + action video (joint, default) or the action video only (i2a)",
        },
    )
    decode_tolerance_px: float | None = field(
        default=None,
        metadata={
            "aliases": ("--decode-tolerance",),
            "metavar": "PX",
            "help": "pixels a generated blob may sit off the other views' point before its frame is "
            "invalid (default: the codec's, max(1, 0.08σ))",
        },
    )

    def __post_init__(self) -> None:
        steps, guidance, tol = self.num_steps, self.guidance, self.decode_tolerance_px
        if isinstance(steps, bool) or not _finite(steps) or steps != int(steps) or steps < 1:
            raise ActionImagesError(f"num_steps (--num-steps) must be an integer >= 1, got {steps!r}")
        object.__setattr__(self, "num_steps", int(steps))  # 8.0 read from a JSON file is 8
        if not (_finite(guidance) and guidance >= 0):
            raise ActionImagesError(f"guidance (--guidance) must be a non-negative number, got {guidance!r}")
        object.__setattr__(self, "guidance", float(guidance))
        if self.mode not in MODES:
            raise ActionImagesError(f"mode (--mode) must be one of {MODES}, got {self.mode!r}")
        if tol is not None and not (_finite(tol) and tol > 0):
            raise ActionImagesError(
                f"decode_tolerance_px (--decode-tolerance-px) must be positive pixels, got {tol}"
            )
        if tol is not None:
            object.__setattr__(self, "decode_tolerance_px", float(tol))

    def as_options(self) -> dict[str, Any]:
        """The fields as keyword options (``None`` ones left out, so the policy's defaults apply)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
