"""Policy kind ``bc``: image behaviour cloning (a CNN per view, spatial-softmax keypoints, an
action-chunk head; ``modeling.py``). Training, checkpoints and execution: ``policy/baseline``."""

from actionimages.policy.registry import baseline_kind

baseline_kind(
    "bc", "actionimages.policy.bc.modeling:BCNet", help="image behaviour cloning (CNN + chunk head)"
)
