"""Policy kind ``lowdim``: the world model's transformer backbone with a low-dimensional action
head (the paper's ablation; ``modeling.py``). Training, checkpoints and execution: ``policy/baseline``."""

from actionimages.policy.registry import baseline_kind

baseline_kind(
    "lowdim", "actionimages.policy.lowdim.modeling:LowDimNet", help="low-dim head on the Wan backbone"
)
