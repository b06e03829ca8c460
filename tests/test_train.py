"""Training: overfitting, resume, atomic checkpoints, data-parallel equivalence, VAE training, CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from actionimages.cli import main as cli_main
from actionimages.errors import ActionImagesError
from actionimages.model import build_model, get_config, load_model
from actionimages.train import (
    SyntheticSource,
    TrainConfig,
    Trainer,
    VAETrainConfig,
    global_indices,
    latest_checkpoint,
    save_checkpoint,
    train_vae,
)

REPO = Path(__file__).resolve().parents[1]


def _trainer(out: Path, steps: int, batch: int = 2, n: int = 4, seed: int = 0, **kw) -> Trainer:
    torch.manual_seed(seed)
    model = build_model("micro")
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=3e-3, warmup=5, progress=False, **kw)
    return Trainer(model, SyntheticSource(model.spec, n), out, cfg)


def test_micro_model_overfits_a_few_clips(tmp_path):
    tr = _trainer(tmp_path / "run", steps=150, batch=4, n=4, save_every=0)
    losses = tr.fit()
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first / 10, (first, last)


def test_data_order_is_a_function_of_the_step():
    a = [global_indices(s, 6, 10, seed=1) for s in range(4)]
    b = [global_indices(s, 6, 10, seed=1) for s in (3, 1, 0, 2)]
    assert a[3] == b[0] and a[1] == b[1]
    flat = [i for s in a for i in s]
    assert sorted(flat[:10]) == list(range(10))  # epoch 0 is a permutation
    assert global_indices(0, 6, 10, seed=2) != a[0]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = _trainer(tmp_path / "full", steps=6, save_every=3)
    ref = full.fit()
    ck = latest_checkpoint(tmp_path / "full" / "checkpoints")
    assert ck is not None and ck.name == "step-00000003"
    assert (ck / "model" / "config.json").is_file() and (ck / "raw.safetensors").is_file()

    saved_hours = json.loads((ck / "state.json").read_text())["cpu_hours"]
    assert saved_hours > 0  # the cost axis of success per CPU-hour

    resumed = _trainer(tmp_path / "full", steps=6, seed=123)  # different init: must be overwritten
    assert resumed.resume()
    assert resumed.step == 3
    assert resumed.cpu_hours >= saved_hours  # resuming carries the spent CPU time forward
    again = resumed.fit()
    assert len(again) == 3
    assert again == pytest.approx(ref[3:], rel=1e-5, abs=1e-6)
    # the exported model (EMA weights) loads as a model directory
    path = resumed.export()
    assert load_model(path).spec.name == "micro"
    from actionimages.train.checkpoint import training_cpu_hours

    assert training_cpu_hours(tmp_path / "full") >= saved_hours  # read back for eval's tagging


def test_checkpoint_survives_a_crash_during_save(tmp_path):
    root = tmp_path / "ck"
    save_checkpoint(root, 1, lambda d: (d / "a.txt").write_text("one"))

    def broken(d: Path) -> None:
        (d / "a.txt").write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        save_checkpoint(root, 2, broken)
    assert latest_checkpoint(root).name == "step-00000001"
    assert (latest_checkpoint(root) / "a.txt").read_text() == "one"
    save_checkpoint(root, 3, lambda d: (d / "a.txt").write_text("three"), keep=1)
    assert latest_checkpoint(root).name == "step-00000003"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-00000003"]


def test_pruning_never_removes_the_checkpoint_just_written(tmp_path):
    """A run restarted from an older step (newer checkpoints left over) keeps what it saves."""
    root = tmp_path / "ck"
    for step in (2, 4, 6):
        save_checkpoint(root, step, lambda d: (d / "a.txt").write_text("old"), keep=3)
    save_checkpoint(root, 3, lambda d: (d / "a.txt").write_text("new"), keep=1)
    assert latest_checkpoint(root).name == "step-00000003"
    assert (latest_checkpoint(root) / "a.txt").read_text() == "new"
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000003", "step-00000004", "step-00000006"]


def test_kill9_during_save_leaves_previous_checkpoint(tmp_path):
    tr = _trainer(tmp_path / "run", steps=2, save_every=0)
    tr.fit()
    tr.save()
    marker = tmp_path / "writing"
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from actionimages.train.checkpoint import save_checkpoint
        def slow(d):
            (d / "model").mkdir()
            (d / "model" / "config.json").write_text("{{}}")
            Path({str(marker)!r}).write_text("x")
            time.sleep(60)
        save_checkpoint(Path({str(tmp_path / "run" / "checkpoints")!r}), 99, slow)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-00000002"
    again = _trainer(tmp_path / "run", steps=3, save_every=0)
    assert again.resume() and again.step == 2
    again.fit()


# Every file in configs/accelerate/, as `accelerate launch --config_file F --num_processes 2` runs it on
# this CPU machine (ACCELERATE_USE_CPU=1: gloo; the Trainer keeps fp32 on CPU whatever the file's
# mixed_precision). Its header's "Run on:" line names the test below.
ACCELERATE_CONFIGS = {
    "cpu_2proc": pytest.param("cpu_2proc", id="cpu_2proc"),
    "ddp": pytest.param("ddp", id="ddp", marks=pytest.mark.slow),
    "fsdp": pytest.param("fsdp", id="fsdp", marks=pytest.mark.slow),
    "deepspeed_zero2": pytest.param("deepspeed_zero2", id="deepspeed_zero2"),
}

_DIST_SCRIPT = """
import json, sys, torch
from torch.distributed.tensor import DTensor
from actionimages.model import build_model
from actionimages.train import SyntheticSource, TrainConfig, Trainer
torch.manual_seed(0)
model = build_model("micro")
# fp32 on both sides: the test compares the arithmetic of the launch, not bf16 rounding ("auto"
# resolves to bf16 on a CPU with avx512_bf16)
cfg = TrainConfig(steps=2, batch_size=2, lr=3e-3, warmup=5, progress=False, save_every=0,
                  mixed_precision="no")
tr = Trainer(model, SyntheticSource(model.spec, 8), sys.argv[1], cfg)
assert tr.acc.num_processes == 2, tr.acc.num_processes
losses = tr.fit()
# full_tensor() gathers a sharded (FSDP) parameter on every rank: all ranks must call it
full = {n: (p.full_tensor() if isinstance(p, DTensor) else p).detach() for n, p in tr.named}
if tr.acc.is_main_process:
    json.dump({"losses": losses, "params": {n: t.sum().item() for n, t in full.items()},
               "sharded": sum(isinstance(p, DTensor) for _, p in tr.named), "trainable": len(tr.named),
               "distributed_type": str(tr.acc.distributed_type),
               "backend": str(torch.distributed.get_backend())}, open(sys.argv[2], "w"))
"""


def _accelerate_launch(tmp_path: Path, name: str, script: str, *args: str) -> None:
    """Run ``script`` under ``accelerate launch --config_file configs/accelerate/NAME.yaml`` with two
    CPU processes (gloo); fails the test with the ranks' error if it fails."""
    config = REPO / "configs" / "accelerate" / f"{name}.yaml"
    file = tmp_path / "launched.py"
    file.write_text(script)
    accelerate = str(Path(sys.executable).parent / "accelerate")
    cmd = [accelerate, "launch", "--config_file", str(config), "--num_processes", "2"]
    cmd += ["--main_process_port", "0", str(file), *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if res.returncode != 0 and "SIGABRT" in res.stderr:
        # A rank aborted (SIGABRT) twice in ~40 launches on a heavily loaded 2-core machine and never
        # reproduced. Relaunch once: a deterministic error fails again, and the test with it.
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    # a rank's own error comes before torchrun's summary, which fills the tail
    assert res.returncode == 0, res.stderr[:3000] + "\n...\n" + res.stderr[-2000:]


@pytest.mark.parametrize("name", list(ACCELERATE_CONFIGS.values()))
def test_accelerate_config_two_processes_match_one_process_with_double_batch(tmp_path, name):
    config = REPO / "configs" / "accelerate" / f"{name}.yaml"
    assert "Run on:" in config.read_text(), f"{config} must say what it was run on"
    if name == "deepspeed_zero2":
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed: its wheel builds against CUDA")
        if not torch.cuda.is_available():
            pytest.skip("accelerate 1.15 runs DeepSpeed only on GPUs (with --cpu it is ignored)")
    out = tmp_path / "dist.json"
    _accelerate_launch(tmp_path, name, _DIST_SCRIPT, str(tmp_path / "dist_run"), str(out))
    dist = json.loads(out.read_text())
    assert dist["backend"] == "gloo"
    if name == "fsdp":  # sharded for real
        assert dist["distributed_type"] == "DistributedType.FSDP"
        assert dist["sharded"] == dist["trainable"] > 0
    else:
        assert dist["distributed_type"] == "DistributedType.MULTI_CPU" and dist["sharded"] == 0

    single = _trainer(tmp_path / "single", steps=2, batch=4, n=8, save_every=0, mixed_precision="no")
    losses = single.fit()
    assert dist["losses"] == pytest.approx(losses, rel=1e-4, abs=1e-6)
    worst = 0.0
    for n, p in single.named:
        ref = p.detach().sum().item()
        assert dist["params"][n] == pytest.approx(ref, rel=1e-3, abs=1e-4), n
        worst = max(worst, abs(dist["params"][n] - ref))
    print(f"{name}: losses {dist['losses']} vs {losses}; largest |parameter-sum difference| {worst:.2e}")


# Stage "first": 4 steps, saving at step 2. Stage "resume": a differently initialised trainer
# resumes the run's newest checkpoint (step 2) to step 4, saves and exports; another trainer
# resumes argv[4] (a checkpoint one process wrote) to step 4.
_FSDP_CHECKPOINT_SCRIPT = """
import json, sys, torch
from actionimages.errors import ActionImagesError
from actionimages.model import build_model
from actionimages.train import SyntheticSource, TrainConfig, Trainer
run, out, stage = sys.argv[1:4]
def trainer(run, seed, acc=None):
    torch.manual_seed(seed)
    model = build_model("micro")
    cfg = TrainConfig(steps=4, batch_size=2, lr=3e-3, warmup=5, progress=False, save_every=2,
                      mixed_precision="no")  # exact comparisons: fp32 whatever the CPU offers
    return Trainer(model, SyntheticSource(model.spec, 8), run, cfg, accelerator=acc)
tr = trainer(run, 0 if stage == "first" else 123)
assert tr.fsdp
result = {}
if stage == "resume":
    try:  # rank 0 alone reads a checkpoint: its error reaches every rank (rather than a hang)
        tr.resume(run + "/checkpoints/step-00000099")
    except ActionImagesError as exc:
        result["missing"] = str(exc)
    assert tr.resume() and tr.step == 2
result["losses"] = tr.fit()
if stage == "resume":
    tr.save()
    tr.export()
    other = trainer(run + "-other", 321, tr.acc)
    assert other.resume(sys.argv[4]) and other.step == 2
    result["losses_from_single"] = other.fit()
if tr.acc.is_main_process:
    json.dump(result, open(out, "w"))
"""


@pytest.mark.slow
def test_fsdp_checkpoints_resume_exactly_and_load_in_one_process(tmp_path):
    """Under fsdp.yaml (2 processes, batch 2) a run resumed from its step-2 checkpoint in a new
    launch repeats the uninterrupted FSDP run's losses exactly, and its losses and weights are
    those of one process at batch 4. The checkpoints are the one-process format: one process
    resumes the FSDP one, FSDP resumes one process's; the exported model loads in one process."""
    import shutil

    from safetensors.torch import load_file

    single = _trainer(tmp_path / "single", steps=4, batch=4, n=8, save_every=2, mixed_precision="no")
    ref = single.fit()
    single_ck = tmp_path / "single" / "checkpoints" / "step-00000002"
    whole, run = tmp_path / "whole", tmp_path / "resumed"
    _accelerate_launch(tmp_path, "fsdp", _FSDP_CHECKPOINT_SCRIPT, str(whole), str(whole) + ".json", "first")
    fsdp_ck = whole / "checkpoints" / "step-00000002"
    shutil.copytree(fsdp_ck, run / "checkpoints" / fsdp_ck.name)
    args = (str(run), str(run) + ".json", "resume", str(single_ck))
    _accelerate_launch(tmp_path, "fsdp", _FSDP_CHECKPOINT_SCRIPT, *args)
    uninterrupted = json.loads(Path(str(whole) + ".json").read_text())["losses"]
    resumed_run = json.loads(Path(str(run) + ".json").read_text())
    assert "step-00000099 is not a directory" in resumed_run["missing"]
    assert resumed_run["losses"] == uninterrupted[2:]  # exactly
    assert uninterrupted == pytest.approx(ref, rel=1e-4, abs=1e-6)
    assert resumed_run["losses_from_single"] == pytest.approx(ref[2:], rel=1e-4, abs=1e-6)
    raw = load_file(str(run / "checkpoints" / "step-00000004" / "raw.safetensors"))
    worst = max((raw[n] - p.detach()).abs().max().item() for n, p in single.named)
    assert raw.keys() == {n for n, _ in single.named} and worst < 1e-4
    # the exported EMA weights load in one process and are the uninterrupted run's
    exported, own = load_model(run / "model").state_dict(), load_model(single.export()).state_dict()
    assert exported.keys() == own.keys()
    worst_ema = max((exported[k] - own[k]).abs().max().item() for k in own)
    assert worst_ema < 1e-4
    # one process resumes the FSDP checkpoint of step 2 and trains on as the others did
    again = _trainer(tmp_path / "again", steps=4, batch=4, n=8, seed=123, mixed_precision="no")
    assert again.resume(fsdp_ck) and again.step == 2
    resumed = again.fit()
    assert resumed == pytest.approx(ref[2:], rel=1e-4, abs=1e-6)
    print(
        f"fsdp checkpoints: FSDP {uninterrupted}, resumed at 2 {resumed_run['losses']}, one process {ref}; "
        f"one process from FSDP's step 2 {resumed}, "
        f"FSDP from one process's {resumed_run['losses_from_single']}; "
        f"largest |raw weight difference| {worst:.2e}, |EMA weight difference| {worst_ema:.2e}"
    )


def test_vae_training_learns_and_resumes(tmp_path):
    cfg = get_config("micro")
    src = SyntheticSource(cfg, 2)
    vcfg = VAETrainConfig(
        steps=4, batch_size=1, lr=2e-3, warmup=2, save_every=2, progress=False, stats_samples=1
    )
    path = train_vae(cfg, src, tmp_path / "v", vcfg)
    conf = json.loads((path / "config.json").read_text())
    assert len(conf["latents_mean"]) == cfg.latent.z_dim and min(conf["latents_std"]) > 0
    history = [
        json.loads((p / "state.json").read_text())["step"]
        for p in (tmp_path / "v" / "checkpoints").iterdir()
        if p.name.startswith("step-")
    ]
    assert 4 in history
    # resume continues from the saved step
    path2 = train_vae(cfg, src, tmp_path / "v", VAETrainConfig(**{**vcfg.to_dict(), "steps": 5}), resume=True)
    assert (
        json.loads((latest_checkpoint(tmp_path / "v" / "checkpoints") / "state.json").read_text())["step"]
        == 5
    )
    assert path2 == path


def test_vae_reconstruction_improves(tmp_path):
    from actionimages.model.synthetic import synthetic_batch
    from actionimages.train.vae import sample_clips, vae_loss

    cfg = get_config("micro")
    torch.manual_seed(0)
    from actionimages.model import build_wan_vae

    vae = build_wan_vae(cfg.latent)
    clips, is_action = sample_clips(synthetic_batch(cfg, 1, seed=0))
    clips, is_action = clips[:2], is_action[:2]  # one RGB and one action clip
    vcfg = VAETrainConfig()
    opt = torch.optim.AdamW(vae.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss, _ = vae_loss(vae, clips, is_action, vcfg, torch.Generator().manual_seed(0))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_cli_train_vae_then_train_and_resume(tmp_path, capsys):
    vae_out, run = tmp_path / "vae", tmp_path / "run"
    assert (
        cli_main(
            [
                "train-vae",
                "--config",
                "micro",
                "--data",
                "synthetic:2",
                "--out",
                str(vae_out),
                "--steps",
                "2",
                "--batch-size",
                "1",
            ]
        )
        == 0
    )
    args = [
        "train",
        "--config",
        "micro",
        "--data",
        "synthetic:3",
        "--out",
        str(run),
        "--vae",
        str(vae_out / "vae"),
        "--batch-size",
        "2",
        "--save-every",
        "2",
        "--warmup",
        "1",
    ]
    assert cli_main(args + ["--steps", "3"]) == 0
    assert latest_checkpoint(run / "checkpoints").name == "step-00000003"
    assert cli_main(args + ["--steps", "4", "--resume"]) == 0
    assert latest_checkpoint(run / "checkpoints").name == "step-00000004"
    assert load_model(run / "model").spec.name == "micro"
    assert any((run / "tb").iterdir())
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 4
    # A run started with --steps 6 and stopped at 4 resumes to 6 without repeating its flags.
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["batch_size"] == 2 and saved["save_every"] == 2
    (run / "train_config.json").write_text(json.dumps({**saved, "steps": 6}))
    assert cli_main(args[:9] + ["--resume"]) == 0
    assert latest_checkpoint(run / "checkpoints").name == "step-00000006"
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["steps"] == 6
    assert "at step 4 of 6" in captured.err
    assert json.loads((run / "train_config.json").read_text())["batch_size"] == 2
    # Fine-tuning: --init-from starts from the trained weights (fp32), overrides that keep shapes only.
    from actionimages.cli.train import model_to_fine_tune

    trained = load_model(run / "model")
    tuned = model_to_fine_tune(str(run), {"mask_mix.i2a": 0.5})
    assert tuned.spec.mask_mix.i2a == 0.5
    for k, v in trained.state_dict().items():
        assert torch.equal(tuned.state_dict()[k].float(), v.float()), k
    assert all(p.dtype == torch.float32 for p in tuned.parameters())
    with pytest.raises(ActionImagesError, match="change the architecture"):
        model_to_fine_tune(str(run / "model"), {"transformer.num_layers": 3})
    ft = tmp_path / "ft"
    assert cli_main(args[:6] + [str(ft), "--init-from", str(run), "--steps", "1", "--batch-size", "2"]) == 0
    assert "fine-tuning from" in capsys.readouterr().err and (ft / "model" / "config.json").is_file()
    assert cli_main(args[:9] + ["--init-from", str(run), "--steps", "1"]) == 2  # with --vae: refused
    # bad input: one clear error, exit code 2
    assert (
        cli_main(
            [
                "train",
                "--config",
                "micro",
                "--data",
                str(tmp_path / "nope"),
                "--out",
                str(run),
                "--vae",
                str(vae_out / "vae"),
            ]
        )
        == 2
    )
    # a config with a small VAE needs one; only tiny has a shipped default
    assert (
        cli_main(["train", "--config", "micro", "--data", "synthetic:2", "--out", str(tmp_path / "r2")]) == 2
    )
    capsys.readouterr()
    tiny = ["train", "--config", "tiny", "--data", "synthetic:2", "--out", str(tmp_path / "r3")]
    assert cli_main(tiny + ["--steps", "1", "--batch-size", "1", "--save-every", "0"]) == 0
    assert "shipped tiny autoencoder" in capsys.readouterr().err  # says which VAE it took


# ------------------------------------------------------------------ damaged checkpoints
def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_byte(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only a checksum tells
    f.write_bytes(bytes(data))


def _no_checksums(ck: Path) -> None:  # a checkpoint written before checksums were recorded
    for c in ck.parent.glob("step-*/checksums.json"):
        c.unlink()


DAMAGES = {
    "truncated raw weights": (lambda ck: _truncate(ck / "raw.safetensors"), "raw.safetensors.*truncated"),
    "truncated model weights": (
        lambda ck: _truncate(next((ck / "model").glob("*.safetensors"))),
        r"model/\S+\.safetensors.*truncated",
    ),
    "bad state.json": (lambda ck: (ck / "state.json").write_text("{"), "state.json"),
    "flipped byte in optimizer.pt": (lambda ck: _flip_byte(ck / "optimizer.pt"), "optimizer.pt.*SHA-256"),
    "no checksums, truncated optimizer.pt": (
        lambda ck: (_no_checksums(ck), _truncate(ck / "optimizer.pt")),
        "optimizer.pt cannot be read",
    ),
    "no checksums, bad state.json": (
        lambda ck: (_no_checksums(ck), (ck / "state.json").write_text('{"step": ')),
        "state.json cannot be read",
    ),
}


@pytest.fixture(scope="module")
def six_step_run(tmp_path_factory) -> tuple[Path, list[float]]:
    """A 6-step run with checkpoints at steps 2 and 4, and its losses."""
    out = tmp_path_factory.mktemp("six") / "run"
    losses = _trainer(out, steps=6, save_every=2).fit()
    assert [p.name for p in (out / "checkpoints").glob("step-*")] != []
    return out, losses


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_resume_skips_a_damaged_checkpoint_for_the_newest_intact_one(tmp_path, six_step_run, damage):
    """A damaged newest checkpoint is skipped with a warning naming it and why; training goes on
    from the intact step 2 exactly as if resumed from there (the uninterrupted run's losses)."""
    import shutil

    ref_run, ref = six_step_run
    run = tmp_path / "run"
    shutil.copytree(ref_run / "checkpoints", run / "checkpoints")
    spoil, why = DAMAGES[damage]
    spoil(run / "checkpoints" / "step-00000004")
    tr = _trainer(run, steps=6, seed=123)
    with pytest.warns(RuntimeWarning) as caught:
        assert tr.resume()
    said = [str(w.message) for w in caught]
    assert len(said) == 2, said
    assert re.search(f"skipping damaged checkpoint step-00000004: .*{why}", said[0]), said[0]
    assert re.search("resuming from .*step-00000002, the newest intact checkpoint", said[1]), said[1]
    assert tr.step == 2 and tr.resumed_from.name == "step-00000002"
    assert tr.fit() == pytest.approx(ref[2:], rel=1e-5, abs=1e-6)


def test_resume_with_no_intact_checkpoint_is_a_clear_error(tmp_path, six_step_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(six_step_run[0] / "checkpoints", run / "checkpoints")
    _truncate(run / "checkpoints" / "step-00000004" / "raw.safetensors")
    (run / "checkpoints" / "step-00000002" / "state.json").write_text("")
    tr = _trainer(run, steps=6)
    with pytest.warns(RuntimeWarning), pytest.raises(ActionImagesError, match="no intact checkpoint") as err:
        tr.resume()
    assert "step-00000004" in str(err.value) and "step-00000002/state.json" in str(err.value)
    # a checkpoint named explicitly is not replaced by another: its damage is the error
    with pytest.raises(ActionImagesError, match="raw.safetensors.*truncated"):
        tr.resume(run / "checkpoints" / "step-00000004")
    assert tr.step == 0


def test_vae_resume_skips_a_damaged_checkpoint(tmp_path):
    """train-vae --resume: a truncated VAE file in the newest checkpoint is skipped; the result
    equals resuming from the intact earlier checkpoint directly. None intact: a clear error."""
    import shutil

    from safetensors.torch import load_file

    cfg = get_config("micro")
    src = SyntheticSource(cfg, 2)
    vcfg = VAETrainConfig(
        steps=4, batch_size=1, lr=2e-3, warmup=2, save_every=2, progress=False, stats_samples=1
    )
    train_vae(cfg, src, tmp_path / "a", vcfg)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000004")  # b: only the intact step 2
    (tmp_path / "b" / "checkpoints" / "latest").write_text("step-00000002\n")
    _truncate(next((tmp_path / "a" / "checkpoints" / "step-00000004" / "vae").glob("*.safetensors")))
    more = VAETrainConfig(**{**vcfg.to_dict(), "steps": 5})
    with pytest.warns(RuntimeWarning) as caught:
        a = train_vae(cfg, src, tmp_path / "a", more, resume=True)
    said = " | ".join(str(w.message) for w in caught)
    assert re.search(r"skipping damaged checkpoint step-00000004: \S+/vae/\S+ is truncated", said), said
    assert re.search(r"resuming from \S+step-00000002,", said), said
    b = train_vae(cfg, src, tmp_path / "b", more, resume=True)
    wa, wb = (load_file(str(next(p.glob("*.safetensors")))) for p in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ca, cb = (json.loads((p / "config.json").read_text()) for p in (a, b))
    assert {**ca, "_name_or_path": None} == {**cb, "_name_or_path": None}  # latent stats too
    for ck in (tmp_path / "b" / "checkpoints").glob("step-*"):
        _truncate(ck / "optimizer.pt")
    with pytest.warns(RuntimeWarning), pytest.raises(ActionImagesError, match="no intact checkpoint"):
        train_vae(cfg, src, tmp_path / "b", more, resume=True)


def test_trainer_rejects_mismatched_resume(tmp_path):
    tr = _trainer(tmp_path / "run", steps=1, save_every=0)
    tr.fit()
    tr.save()
    other = _trainer(tmp_path / "run", steps=2, batch=3)
    with pytest.raises(ActionImagesError, match="global batch"):
        other.resume()


def test_train_flags_come_from_the_config_dataclasses(tmp_path, capsys):
    """Every TrainConfig field has a flag and every ModelConfig field an override, so a new field
    needs no hand-written option; overrides reach the trained model's config."""
    import dataclasses
    import json

    from actionimages.cli import build_parser
    from actionimages.cli.config_args import apply_overrides
    from actionimages.model import get_config
    from actionimages.train import TrainConfig

    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in sub._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= dests
    assert {"model.obs_align", "model.mask_mix.i2a", "model.transformer.num_layers"} <= dests
    run = tmp_path / "r"
    argv = ["train", "--config", "tiny", "--data", "synthetic:2", "--out", str(run), "--steps", "1"]
    argv += ["--batch-size", "1", "--save-every", "0", "--no-progress", "--model.obs_align", "false"]
    argv += ["--model.mask_mix.i2a", "0.5", "--betas", "0.9", "0.95"]
    assert cli_main(argv) == 0
    cfg = json.loads((run / "model" / "config.json").read_text())["spec"]
    assert cfg["obs_align"] is False and cfg["mask_mix"]["i2a"] == 0.5 and cfg["obs_patch"] == 8
    tc = json.loads((run / "train_config.json").read_text())
    assert tc["progress"] is False and tc["betas"] == [0.9, 0.95]
    with pytest.raises(ActionImagesError, match="no field"):
        apply_overrides(get_config("tiny"), {"nope": 1})
    with pytest.raises(ActionImagesError, match="obs_align"):
        apply_overrides(get_config("tiny"), {"obs_patch": 0})  # the config's own check still runs
    assert cli_main(argv[:9] + ["--mixed-precision", "fp8"]) == 2  # bad value: a clear error
    assert "mixed_precision" in capsys.readouterr().err


def test_resume_refuses_other_data_unless_told(tmp_path, capsys):
    """``train --resume --data OTHER`` would switch datasets mid-run: refused, naming both, unless
    --allow-data-change; the same episodes at another path are the same data (fingerprint)."""
    from actionimages.train.data import data_fingerprint

    run = tmp_path / "r"
    argv = ["train", "--config", "tiny", "--out", str(run), "--batch-size", "1", "--no-progress"]
    assert cli_main([*argv, "--data", "synthetic:2", "--steps", "2", "--save-every", "1"]) == 0
    state = json.loads(sorted((run / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())
    assert state["data_fingerprint"] == "synthetic:2"
    capsys.readouterr()
    assert cli_main([*argv, "--resume", "--data", "synthetic:3", "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert "not the data" in err and "synthetic:2" in err and "--allow-data-change" in err
    assert cli_main([*argv, "--resume", "--data", "synthetic:3", "--steps", "3", "--allow-data-change"]) == 0
    assert "--allow-data-change" in capsys.readouterr().err
    assert data_fingerprint(str(tmp_path)) is None  # not a dataset of ours: no fingerprint


def test_a_model_trained_at_a_clip_stride_plans_poses_that_many_control_steps_apart(tmp_path):
    """train --stride 2 records frame_stride 2 in the model's config; its policy then holds each
    planned pose for 2 control steps (the poses are 2 steps apart in the data)."""
    from actionimages.cli.config_args import apply_overrides
    from actionimages.model import load_model
    from actionimages.policy.action_images.policy import ActionImagePolicy

    run = tmp_path / "r"
    argv = ["train", "--config", "tiny", "--data", "synthetic:2", "--out", str(run), "--steps", "1"]
    assert cli_main([*argv, "--batch-size", "1", "--save-every", "0", "--no-progress", "--stride", "2"]) == 0
    model = load_model(run / "model")
    assert model.spec.frame_stride == 2
    assert ActionImagePolicy(model).executor.repeat == 2
    assert ActionImagePolicy(model, repeat=1).executor.repeat == 1  # an explicit choice wins
    with pytest.raises(ActionImagesError, match="frame_stride"):
        apply_overrides(get_config("tiny"), {"frame_stride": 0})


def test_clip_settings_are_saved_and_kept_on_resume(tmp_path):
    """--stride / --clips-per-episode / --hold-final define the clip pool, so resume keeps them and
    refuses a contradicting flag instead of training on different clips."""
    import argparse

    from actionimages.cli.train import CLIP_DEFAULTS, clip_settings

    def flags(resume=True, **kw):
        return argparse.Namespace(resume=resume, **{k: kw.get(k) for k in CLIP_DEFAULTS})

    run = tmp_path / "run"
    assert clip_settings(flags(False, hold_final=4, clips_per_episode=8), run) == {
        "stride": 1, "clips_per_episode": 8, "hold_final": 4}  # fmt: skip
    assert json.loads((run / "clip_config.json").read_text())["hold_final"] == 4
    assert clip_settings(flags(), run)["hold_final"] == 4  # resume without the flags keeps them
    assert clip_settings(flags(hold_final=4), run)["clips_per_episode"] == 8  # repeating one is fine
    with pytest.raises(ActionImagesError, match="--hold-final 2 differs from this run's 4"):
        clip_settings(flags(hold_final=2), run)
    assert clip_settings(flags(), tmp_path / "fresh") == CLIP_DEFAULTS
    # a fresh run in the same folder is not bound by the old file: it writes its own
    assert clip_settings(flags(False), run) == CLIP_DEFAULTS
    assert json.loads((run / "clip_config.json").read_text()) == CLIP_DEFAULTS


# ---------------------------------------------------------------- the committed run state (OUT/state/)
def _state_only_copy(run: Path, clone: Path) -> None:
    """What a fresh clone of the repository holds of ``run``: its state/ folder and nothing else."""
    import shutil

    clone.mkdir(parents=True)
    shutil.copytree(run / "state", clone / "state")


def test_run_state_alone_resumes_exactly_like_the_uninterrupted_run(tmp_path):
    full = _trainer(tmp_path / "full", steps=6, save_every=3)
    ref = full.fit()
    state = json.loads((tmp_path / "full" / "state" / "state.json").read_text())
    assert state["step"] == 3 and state["tier"] == "exact" and not state["lossy"]  # micro fits in fp32
    assert state["cpu_hours"] > 0 and state["mixed_precision"] == full.precision

    _state_only_copy(tmp_path / "full", tmp_path / "clone")
    resumed = _trainer(tmp_path / "clone", steps=6, seed=123)  # other init: must be overwritten
    assert resumed.resume()
    assert resumed.resumed_from == tmp_path / "clone" / "state" and resumed.step == 3
    assert resumed.cpu_hours >= state["cpu_hours"]
    assert resumed.fit() == ref[3:]  # bit for bit
    # The newest of checkpoint and state wins; on a tie the full checkpoint.
    again = _trainer(tmp_path / "full", steps=6)
    assert again.resume() and again.resumed_from.name == "step-00000003"


def test_a_resume_in_another_precision_says_so_and_records_which_steps_used_which(tmp_path):
    """``auto`` resolves per machine (bf16 only where the CPU has it), so a run resumed elsewhere can
    change precision: the resume warns, and state.json keeps [first step, precision] segments."""
    first = _trainer(tmp_path / "run", steps=6, save_every=3, mixed_precision="no")
    first.fit()  # the state is written at step 3
    state = json.loads((tmp_path / "run" / "state" / "state.json").read_text())
    assert state["precision_segments"] == [[0, "no"]]
    again = _trainer(tmp_path / "run", steps=9, save_every=3, mixed_precision="bf16")
    with pytest.warns(
        RuntimeWarning, match="trained in mixed precision 'no' up to step 3; it continues in 'bf16'"
    ):
        assert again.resume()
    again.fit()
    state = json.loads((tmp_path / "run" / "state" / "state.json").read_text())
    assert state["precision_segments"] == [[0, "no"], [3, "bf16"]] and state["mixed_precision"] == "bf16"


def test_run_state_fits_its_budget_in_a_lossy_tier_and_resumes_without_a_jump(tmp_path):
    from actionimages.train.run_state import TIERS, tier_bytes

    probe = _trainer(tmp_path / "probe", steps=1)
    n = sum(p.numel() for _, p in probe.named)
    frozen = sum(p.numel() for p in probe.model.latent_space.parameters())
    budget_mib = (tier_bytes(TIERS[2], n, frozen) + (1 << 20) + 4096) / (1 << 20)  # lean fits, compact not
    full = _trainer(tmp_path / "full", steps=8, save_every=4, state_mib=budget_mib)
    ref = full.fit()
    folder = tmp_path / "full" / "state"
    state = json.loads((folder / "state.json").read_text())
    assert state["tier"] == "lean" and state["lossy"]
    assert sum(f.stat().st_size for f in folder.iterdir()) <= budget_mib * (1 << 20)

    _state_only_copy(tmp_path / "full", tmp_path / "clone")
    resumed = _trainer(tmp_path / "clone", steps=8, seed=7, state_mib=budget_mib)
    with pytest.warns(RuntimeWarning, match="'lean' precision tier"):
        assert resumed.resume()
    raw_at_4 = {n: p.detach().clone() for n, p in resumed.named}
    losses = resumed.fit()
    # The first step after resuming has the uninterrupted run's trained weights (raw is fp32 in
    # every tier; only the frozen autoencoder is fp16 in 'lean'), so its loss is the same to 1e-4;
    # the re-warmed moments change later steps a little.
    assert losses[0] == pytest.approx(ref[4], rel=1e-4)
    assert losses == pytest.approx(ref[4:], rel=0.25)
    assert all(torch.isfinite(p).all() for p in raw_at_4.values())

    with pytest.raises(ActionImagesError, match="over the 0 MiB budget.*--state-mib"):
        _trainer(tmp_path / "tiny_budget", steps=2, state_mib=0.01)  # refused before training


def test_damaged_run_state_is_refused_by_name(tmp_path):
    _trainer(tmp_path / "run", steps=2, save_every=1).fit()
    _state_only_copy(tmp_path / "run", tmp_path / "clone")
    f = tmp_path / "clone" / "state" / "tensors.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ActionImagesError, match="tensors.safetensors does not match the SHA-256"):
        _trainer(tmp_path / "clone", steps=3).resume()


def test_cli_resumes_a_run_from_its_committed_state_on_a_fresh_clone(tmp_path, capsys):
    run, clone = tmp_path / "run", tmp_path / "clone" / "run"
    argv = ["train", "--config", "micro", "--data", "synthetic:3", "--out", str(run), "--batch-size", "2",
            "--save-every", "2", "--warmup", "1", "--steps", "4", "--clips-per-episode", "3"]  # fmt: skip
    # micro needs a VAE: take it from a one-step VAE run
    vae = tmp_path / "vae"
    assert cli_main(["train-vae", "--config", "micro", "--data", "synthetic:2", "--out", str(vae),
                     "--steps", "1", "--batch-size", "1"]) == 0  # fmt: skip
    assert cli_main(argv + ["--vae", str(vae / "vae")]) == 0
    assert (run / "state" / "state.json").is_file()
    _state_only_copy(run, clone)
    capsys.readouterr()
    # --resume RUN alone: data, model (with its VAE), clip and train settings all come from the state
    assert cli_main(["train", "--resume", str(clone), "--steps", "6"]) == 0
    err = capsys.readouterr().err
    assert "training on the run's own data, synthetic:3" in err and "at step 4 of 6" in err
    assert json.loads((clone / "state" / "state.json").read_text())["step"] == 6
    assert json.loads((clone / "clip_config.json").read_text())["clips_per_episode"] == 3
    # other data than the run's: refused, naming both
    assert cli_main(["train", "--resume", str(clone), "--data", "synthetic:5", "--steps", "8"]) == 2
    err = capsys.readouterr().err
    assert "synthetic:5 is not the data" in err and "(synthetic:3" in err
    assert cli_main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "neither checkpoints/ nor a committed state/" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(clone), "--out", str(run)]) == 2
    assert "name different runs" in capsys.readouterr().err
    assert cli_main(["train", "--config", "micro", "--data", "synthetic:2"]) == 2  # no --out, no --resume
    assert "--out is required" in capsys.readouterr().err
    with pytest.raises(ActionImagesError, match="state_mib must be >= 0"):
        TrainConfig(state_mib=-1)


def test_auto_mixed_precision_picks_bf16_only_on_cpus_with_native_bf16():
    from actionimages.train.trainer import cpu_has_native_bf16

    assert cpu_has_native_bf16("processor : 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_native_bf16("flags : sse avx2 amx_bf16\n")
    assert not cpu_has_native_bf16("flags : fpu sse avx2 fma avx512f\n")
    assert not cpu_has_native_bf16("")
