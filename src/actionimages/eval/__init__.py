"""Closed-loop evaluation, baselines, generation metrics and the HTML report.

Submodules import lazily (the sim, model and data parts are only needed by the functions that
use them): ``stats`` (Wilson intervals), ``metrics`` (PSNR, SSIM, LPIPS, FVD, pose errors),
``video`` (rollout MP4s), ``runner`` (closed-loop evaluation), ``report`` (HTML),
``generation`` (generation-quality evaluation) and ``baselines``.
"""

from actionimages.eval.stats import wilson_interval

__all__ = ["wilson_interval"]
