"""``actionimages export`` and the checkpoint shipped in ``checkpoints/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actionimages.atomic import sha256_file
from actionimages.cli import main as cli_main
from actionimages.cli.export import export_checkpoint
from actionimages.errors import ActionImagesError
from actionimages.model import build_model, load_model

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny"


def test_export_fp16_roundtrip_and_provenance(tmp_path):
    torch.manual_seed(0)
    model = build_model("micro")
    model.save_pretrained(str(tmp_path / "run" / "model"), safe_serialization=True)
    recipe = tmp_path / "RECIPE.md"
    recipe.write_text("made by a test\n")
    out = tmp_path / "ckpt"
    assert (
        cli_main(
            ["export", "--checkpoint", str(tmp_path / "run"), "--out", str(out), "--recipe", str(recipe)]
        )
        == 0
    )
    info = json.loads((out / "provenance.json").read_text())
    weights = out / info["weights"]
    assert (
        info["dtype"] == "fp16"
        and info["config"] == "micro"
        and info["weights_sha256"] == sha256_file(weights)
    )
    assert (out / "RECIPE.md").read_text() == "made by a test\n"
    assert not list(tmp_path.glob(".ckpt.tmp*"))  # written aside, renamed into place
    back = load_model(out)
    assert next(back.parameters()).dtype == torch.float32
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        np.testing.assert_allclose(b.numpy(), a.half().float().numpy(), err_msg=name)
    # fp32 export is exact; a missing recipe is an error before anything is written
    export_checkpoint(tmp_path / "run", tmp_path / "exact", dtype="fp32")
    exact = load_model(tmp_path / "exact").state_dict().items()
    for (name, a), (_, b) in zip(model.state_dict().items(), exact, strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ActionImagesError, match="recipe"):
        export_checkpoint(out, tmp_path / "x", recipe=tmp_path / "missing.md")
    with pytest.raises(ActionImagesError, match="does not exist"):
        export_checkpoint(tmp_path / "nope", tmp_path / "y")


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no checkpoint shipped in checkpoints/tiny")
def test_shipped_checkpoint_loads_and_plans():
    from actionimages import sim
    from actionimages.policy.action_images.policy import ActionImagePolicy

    info = json.loads((SHIPPED / "provenance.json").read_text())
    assert sha256_file(SHIPPED / info["weights"]) == info["weights_sha256"], "shipped weights changed"
    policy = ActionImagePolicy.from_checkpoint(SHIPPED)
    env = sim.make_env("reach_target", split="heldout", seed=3, image_size=64)
    obs, _ = env.reset(seed=3)
    policy.set_seed(3)
    policy.reset(obs)
    action = policy.act(obs)
    env.close()
    plan = policy.last_plan
    assert np.isfinite(action).all() and plan["valid"][1:].any(), (
        "the shipped model should draw decodable actions"
    )


@pytest.mark.parametrize("kind", ["bc", "lowdim"])
def test_shipped_baselines_load_and_act(kind):
    """The baselines shipped beside checkpoints/tiny: intact weights, the kind eval detects, and a
    finite action from a fresh scene."""
    from actionimages import sim
    from actionimages.policy.baseline import load_baseline_policy
    from actionimages.policy.registry import detect_kind

    folder = SHIPPED.parent / kind
    if not folder.is_dir():
        pytest.skip(f"no baseline shipped in checkpoints/{kind}")
    info = json.loads((folder / "provenance.json").read_text())
    assert sha256_file(folder / info["weights"]) == info["weights_sha256"], "shipped weights changed"
    assert detect_kind(folder) == kind and info["cpu_hours"] > 0
    policy = load_baseline_policy(folder)
    env = sim.make_env("close_drawer", split="test", seed=3, image_size=64)
    obs, _ = env.reset(seed=3)
    policy.reset(obs)
    action = policy.act(obs)
    env.close()
    assert action.shape == (7,) and np.isfinite(action).all()


def test_loading_is_strict_and_checks_the_recorded_checksum(tmp_path):
    """A config.json edited to another architecture, or one flipped weight byte of an exported
    checkpoint, is refused with a message naming the problem (issue 13)."""
    import shutil

    torch.manual_seed(0)
    model = build_model("micro")
    model.save_pretrained(str(tmp_path / "run" / "model"), safe_serialization=True)
    out = tmp_path / "ckpt"
    assert cli_main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == 0
    load_model(out)  # intact: loads

    edited = tmp_path / "edited"
    shutil.copytree(tmp_path / "run" / "model", edited)
    cfg = json.loads((edited / "config.json").read_text())
    cfg["spec"]["transformer"]["num_layers"] = 1  # micro has 2
    (edited / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ActionImagesError, match="do not match its config.json.*unexpected"):
        load_model(edited)

    weights = out / json.loads((out / "provenance.json").read_text())["weights"]
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ActionImagesError, match="changed since export"):
        load_model(out)
