"""Validate ``actionimages plan-memory`` against measurements on this CPU (issue 15).

For each config: the parameters the planner counts on the meta device against a real build, and
the activation bytes it predicts against the tensors autograd actually saves for backward during
one training step (``torch.autograd.graph.saved_tensors_hooks``; fp32 on the CPU, parameters
excluded), with and without gradient checkpointing.

    .venv/bin/python benchmarks/memory.py [--configs micro tiny small] [--batch-size 2]
        [--out docs/results/memory.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def saved_activation_bytes(model, prep, batch_size: int) -> int:
    """Bytes of the non-parameter tensors autograd saves in one training forward."""
    from actionimages.model.flow import training_loss

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[(st.data_ptr(), st.nbytes())] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        training_loss(model, prep, list(range(batch_size)), modes=["joint"] * batch_size)
    return sum(seen.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["micro", "tiny", "small"])
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    from actionimages.model import build_model, get_config
    from actionimages.model.flow import prepare_batch
    from actionimages.model.memory import GIB, activation_elements, count_parameters, plan_memory
    from actionimages.model.synthetic import synthetic_batch

    torch.set_num_threads(1)
    rows = []
    for name in args.configs:
        cfg = get_config(name)
        torch.manual_seed(0)
        model = build_model(cfg).train()
        prep = prepare_batch(model, synthetic_batch(cfg, args.batch_size, seed=1))
        counted = sum(count_parameters(cfg).values())
        real = sum(p.numel() for p in model.parameters())
        for ckpt in (False, True):
            model.gradient_checkpointing = ckpt
            measured = saved_activation_bytes(model, prep, args.batch_size)
            plan = plan_memory(
                cfg, batch_size=args.batch_size, gradient_checkpointing=ckpt, activations_dtype="fp32"
            )
            # the hooks see what the forward pass saves; with checkpointing the block recomputed in
            # backward comes on top (the plan's peak includes it)
            predicted = activation_elements(cfg, cfg.num_tokens, ckpt, peak=False) * args.batch_size * 4
            assert plan.activations_gib * GIB >= predicted
            rows.append(
                {
                    "config": name,
                    "gradient_checkpointing": ckpt,
                    "params_counted": counted,
                    "params_built": real,
                    "activations_measured_mib": round(measured / 2**20, 2),
                    "activations_predicted_mib": round(predicted / 2**20, 2),
                    "ratio": round(predicted / measured, 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
