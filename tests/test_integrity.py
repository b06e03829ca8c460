"""Recorded checksums are checked on every load (issue 26): a trainer checkpoint's ``checksums.json``
by ``load_model``, ``export`` and ``train --init-from``, and an exported folder's ``provenance.json``,
which records its config files too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from actionimages.cli import main as cli_main
from actionimages.errors import ActionImagesError
from actionimages.model import build_model, load_model
from actionimages.model.io import verify_recorded_checksums
from actionimages.train import SyntheticSource, TrainConfig, Trainer
from actionimages.train.checkpoint import CheckpointDamaged, verify_checkpoint

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
WEIGHTS = "diffusion_pytorch_model.safetensors"
HASHES = r"recorded [0-9a-f]{12}…, found [0-9a-f]{12}…"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A micro run of 6 steps with checkpoints at steps 3 and 6 (as tests/test_train.py's)."""
    out = tmp_path_factory.mktemp("integrity") / "run"
    torch.manual_seed(0)
    model = build_model("micro")
    cfg = TrainConfig(steps=6, batch_size=2, lr=3e-3, warmup=5, progress=False, save_every=3)
    Trainer(model, SyntheticSource(model.spec, 4), out, cfg).fit()
    assert (out / "checkpoints" / "step-00000003" / "checksums.json").is_file()
    return out


def _copy_step(run: Path, dst: Path) -> Path:
    ck = dst / "step-00000003"
    shutil.copytree(run / "checkpoints" / "step-00000003", ck)
    return ck


def _flip_byte(f: Path, offset: int = -100) -> None:
    data = bytearray(f.read_bytes())
    data[offset] ^= 0x01
    f.write_bytes(bytes(data))


def test_an_intact_checkpoint_loads(trained_run):
    ck = trained_run / "checkpoints" / "step-00000003"
    verify_recorded_checksums(ck / "model")
    verify_recorded_checksums(ck)
    model = load_model(ck / "model")
    assert model.spec.name == "micro"


def test_a_flipped_weight_byte_in_a_checkpoint_is_refused_by_load_model(trained_run, tmp_path):
    ck = _copy_step(trained_run, tmp_path)
    _flip_byte(ck / "model" / WEIGHTS)
    with pytest.raises(CheckpointDamaged, match=f"model/{WEIGHTS} does not match the SHA-256.*{HASHES}"):
        load_model(ck / "model")
    with pytest.raises(ActionImagesError, match=WEIGHTS):
        verify_checkpoint(ck)  # what resuming checks says the same


def test_a_truncated_or_missing_checkpoint_file_is_refused_by_name(trained_run, tmp_path):
    ck = _copy_step(trained_run, tmp_path)
    weights = ck / "model" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointDamaged, match=f"{WEIGHTS} is truncated"):
        load_model(ck / "model")
    shutil.copy(trained_run / "checkpoints" / "step-00000003" / "model" / WEIGHTS, weights)
    load_model(ck / "model")  # restored: loads again
    (ck / "state.json").unlink()  # the step's record, read for its step and cost
    with pytest.raises(CheckpointDamaged, match="state.json is missing"):
        load_model(ck / "model")


def test_loading_the_model_does_not_hash_the_optimizer_state(trained_run, tmp_path):
    """Loading step-N/model checks what it reads; resuming (verify_checkpoint) checks the rest."""
    ck = _copy_step(trained_run, tmp_path)
    _flip_byte(ck / "optimizer.pt")
    load_model(ck / "model")
    with pytest.raises(CheckpointDamaged, match="optimizer.pt does not match"):
        verify_checkpoint(ck)


def test_export_refuses_a_damaged_checkpoint_and_writes_nothing(trained_run, tmp_path, capsys):
    ck = _copy_step(trained_run, tmp_path / "ckpts")
    _flip_byte(ck / "model" / WEIGHTS)
    out = tmp_path / "exported"
    capsys.readouterr()
    assert cli_main(["export", "--checkpoint", str(ck), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("actionimages export: error: "), err
    assert WEIGHTS in err[0] and "does not match the SHA-256" in err[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpts"]


def test_init_from_refuses_a_damaged_checkpoint(trained_run, tmp_path):
    from actionimages.cli.train import model_to_fine_tune

    ck = _copy_step(trained_run, tmp_path)
    model_to_fine_tune(str(ck), {})  # intact: loads
    _flip_byte(ck / "model" / WEIGHTS)
    with pytest.raises(CheckpointDamaged, match=WEIGHTS):
        model_to_fine_tune(str(ck), {})


def test_an_exported_folder_records_and_checks_its_config(trained_run, tmp_path):
    out = tmp_path / "exported"
    ck = trained_run / "checkpoints" / "step-00000003"
    assert cli_main(["export", "--checkpoint", str(ck), "--out", str(out)]) == 0
    info = json.loads((out / "provenance.json").read_text())
    assert set(info["config_sha256"]) == {"config.json"} and info["step"] == 3
    load_model(out)

    original = (out / "config.json").read_text()
    for key, value in (("timestep_shift", 5.0), ("prediction", "x")):
        cfg = json.loads(original)
        assert cfg["spec"][key] != value
        cfg["spec"][key] = value  # loads into the same weights, but samples differently
        (out / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ActionImagesError, match="config.json changed since export: SHA-256"):
            load_model(out)
    (out / "config.json").write_text(original)
    load_model(out)

    # a folder exported before config files were recorded still loads (its config is unchecked)
    del info["config_sha256"]
    (out / "provenance.json").write_text(json.dumps(info))
    load_model(out)


def test_exported_weights_of_another_size_are_named_truncated(trained_run, tmp_path):
    out = tmp_path / "exported"
    assert cli_main(["export", "--checkpoint", str(trained_run), "--out", str(out)]) == 0
    (out / WEIGHTS).write_bytes((out / WEIGHTS).read_bytes()[:-1])
    with pytest.raises(ActionImagesError, match=f"{WEIGHTS} changed since export: truncated"):
        load_model(out)


def test_a_re_exported_baseline_records_and_checks_baseline_json(tmp_path):
    from actionimages.policy.baseline import load_baseline

    shipped = CHECKPOINTS / "bc"
    if not shipped.is_dir():
        pytest.skip("no baseline shipped in checkpoints/bc")
    load_baseline(shipped)  # exported before baseline.json was recorded: loads
    out = tmp_path / "bc"
    assert cli_main(["export", "--checkpoint", str(shipped), "--out", str(out)]) == 0
    assert set(json.loads((out / "provenance.json").read_text())["config_sha256"]) == {"baseline.json"}
    load_baseline(out)
    meta = json.loads((out / "baseline.json").read_text())
    meta["step"] = int(meta["step"]) + 1
    (out / "baseline.json").write_text(json.dumps(meta))
    with pytest.raises(ActionImagesError, match="baseline.json changed since export"):
        load_baseline(out)


@pytest.mark.skipif(not (CHECKPOINTS / "tiny").is_dir(), reason="no checkpoint shipped in checkpoints/tiny")
def test_the_shipped_tiny_checkpoint_still_loads():
    verify_recorded_checksums(CHECKPOINTS / "tiny")
    assert load_model(CHECKPOINTS / "tiny").spec.name == "tiny"
