"""Every bad input we try at the command line, what it gets, and whether that is what it should get.

    python scripts/bad_inputs.py --out docs/results/bad_inputs.md   # regenerate the table
    python scripts/bad_inputs.py --check                            # exit 1 if a case misbehaves

The CLI (``actionimages.cli.main``) answers bad input with exit code 2 and one line on stderr,
``actionimages CMD: error: ...``, never a traceback, and writes nothing when it refuses. Each case
below is ``(name, argv, setup)``: ``setup(tmp)`` may create files in the case's empty folder first
(a file where a folder is expected, a corrupt JSON, a checkpoint with a flipped byte) and returns
``{NAME: value}`` placeholders that ``{NAME}`` in argv is replaced with (``{tmp}`` is always there).
Cases run in-process, one after another, each in a fresh folder that is also the working directory.
A case fails the check when it raises (a traceback), exits with another code than it expects (2, or
1 where 1 is the documented answer, e.g. ``dataset check`` finding problems), prints more than one
stderr line where it refuses, or changes files (its folder, the shared fixtures) when it refuses.
A case that fails for a known reason carries a ``gap`` note: it is listed as a known gap, and the
check fails once it passes (so the note cannot outlive the fix).

tests/test_bad_inputs.py runs every case with these semantics and checks that the table in
docs/results/bad_inputs.md names every case.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
END_MARKER = "<!-- end of the generated table: text below this line is kept when the table is regenerated -->"


@dataclass
class Case:
    name: str
    argv: str | list[str]  # a command line (split as a shell would), or its words
    setup: Callable[[Path], dict[str, str] | None] | None = None
    expect: int = 2  # 1 where it is the documented answer (dataset check: problems found)
    gap: str = ""  # a known gap: why this case fails the check (the check fails once it passes)


@dataclass
class Result:
    case: Case
    command: str
    code: int | str  # the exit code, or "raised X" for an exception main() let through
    message: str  # stderr's last line (paths replaced)
    lines: int  # non-empty stderr lines
    traceback: bool
    wrote: list[str] = field(default_factory=list)  # files created, changed or removed
    seconds: float = 0.0
    stderr: str = ""  # all of it (paths replaced)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.traceback:
            out.append("traceback")
        if self.code != self.case.expect:
            out.append(f"exit {self.code}, expected {self.case.expect}")
        if self.case.expect == 2:
            if self.lines != 1:
                out.append(f"{self.lines} stderr lines, expected 1")
            elif not re.match(r"actionimages( [\w-]+)*: error: ", self.message):
                out.append("stderr line is not 'actionimages CMD: error: ...'")
        if self.wrote and self.code != 0:
            out.append(f"wrote {', '.join(self.wrote[:3])}{' ...' if len(self.wrote) > 3 else ''}")
        return out

    @property
    def verdict(self) -> str:
        """``ok``, ``FAIL: why``, ``known gap: why`` or ``FIXED?`` (a gap that no longer fails)."""
        problems = self.problems
        if self.case.gap:
            return f"known gap: {self.case.gap}" if problems else "FIXED? (marked as a known gap but passes)"
        return "FAIL: " + "; ".join(problems) if problems else "ok"

    @property
    def passes(self) -> bool:
        return self.verdict == "ok" or self.verdict.startswith("known gap")


# ---------------------------------------------------------------- shared fixtures (made once, lazily)

_SHARED: Path | None = None
_OPEN: list[socket.socket] = []  # sockets a case's setup holds open while it runs


def shared_root() -> Path:
    if _SHARED is None:
        raise RuntimeError("shared fixtures are only available while run_cases() runs")
    return _SHARED


def _quiet_main(argv: list[str]) -> None:
    from actionimages.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"fixture command {argv} failed ({code}): {err.getvalue()[-2000:]}")


def tiny_run() -> Path:
    """A tiny world-model run, one training step, one checkpoint (the slow fixture: about 7 s)."""
    run = shared_root() / "run"
    if not (run / "model").is_dir():
        _quiet_main(
            ["train", "--config", "tiny", "--data", "synthetic:2", "--out", str(run), "--steps", "1"]
            + ["--batch-size", "1", "--save-every", "1", "--no-progress"]
        )
    return run


def tiny_model() -> Path:
    """The tiny run exported (fp16 weights + provenance.json with their SHA-256)."""
    model = shared_root() / "model"
    if not (model / "provenance.json").is_file():
        _quiet_main(["export", "--checkpoint", str(tiny_run()), "--out", str(model)])
    return model


def tiny_dataset() -> Path:
    """One collected reach_target episode, 64 px, one camera (about 6 s)."""
    ds = shared_root() / "dataset"
    if not (ds / "meta" / "info.json").is_file():
        _quiet_main(
            ["collect", "--task", "reach_target", "--episodes", "1", "--out", str(ds), "--image-size", "64"]
            + ["--cameras", "front", "--workers", "1", "--quiet"]
        )
    return ds


def flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- setups


def a_file(name: str, text: str = "not a directory\n") -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)

    return setup


def a_folder(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).mkdir(parents=True)

    return setup


def dataset(tmp: Path) -> dict[str, str]:
    return {"ds": str(tiny_dataset())}


def run_dir(tmp: Path) -> dict[str, str]:
    return {"run": str(tiny_run())}


def model_dir(tmp: Path) -> dict[str, str]:
    return {"model": str(tiny_model())}


def dataset_copy(edit: Callable[[Path], None]) -> Callable[[Path], dict[str, str]]:
    """A copy of the tiny dataset in ``tmp/ds``, then ``edit(copy)``."""

    def setup(tmp: Path) -> dict[str, str]:
        shutil.copytree(tiny_dataset(), tmp / "ds")
        edit(tmp / "ds")
        return {}

    return setup


def v21_dataset(tmp: Path) -> None:
    """A LeRobot v2.1 dataset's meta/info.json (what LeRobot wrote before v3.0)."""
    (tmp / "v21" / "meta").mkdir(parents=True)
    info = {
        "codebase_version": "v2.1",
        "robot_type": "so100",
        "total_episodes": 2,
        "total_frames": 20,
        "fps": 30,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {"action": {"dtype": "float32", "shape": [6], "names": None}},
    }
    (tmp / "v21" / "meta" / "info.json").write_text(json.dumps(info))


def model_copy(edit: Callable[[Path], None]) -> Callable[[Path], dict[str, str]]:
    """A copy of the exported tiny model in ``tmp/model``, then ``edit(copy)``."""

    def setup(tmp: Path) -> dict[str, str]:
        shutil.copytree(tiny_model(), tmp / "model")
        edit(tmp / "model")
        return {}

    return setup


def trainer_checkpoint_copy(tmp: Path) -> None:
    """The tiny run's trainer checkpoint (model/, optimizer, checksums.json), a byte of model/ flipped."""
    src = tiny_run() / "checkpoints" / "step-00000001"
    dst = tmp / "run" / "checkpoints" / "step-00000001"
    shutil.copytree(src, dst)
    flip_byte(dst / "model" / "diffusion_pytorch_model.safetensors", 0.7)


def rlbench_with_text_intrinsics(tmp: Path) -> None:
    """An RLBench-layout episode whose camera_params.json holds text where intrinsics belong."""
    from actionimages.data.fixtures import write_rlbench_episode

    write_rlbench_episode(tmp / "rlbench" / "episode0", steps=8, size=32)
    params = tmp / "rlbench" / "episode0" / "view0" / "camera_params.json"
    bad = json.loads(params.read_text())
    bad["intrinsics"] = [[["fx", 0, 0], [0, "fy", 0], [0, 0, 1]]] * len(bad["intrinsics"])
    params.write_text(json.dumps(bad))


def busy_port(tmp: Path) -> dict[str, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    _OPEN.append(sock)
    return {"port": str(sock.getsockname()[1])}


def report_with_corrupt_results(tmp: Path) -> None:
    (tmp / "run" / "eval").mkdir(parents=True)
    (tmp / "run" / "eval" / "results.json").write_text('{"tasks": {"reach_target": ')


# ---------------------------------------------------------------- the cases

_EVAL = "eval --task reach_target --policy expert --out {tmp}/eval"
_TRAIN = "train --config tiny --data synthetic:2 --out {tmp}/run --no-progress"
_VAE = "train-vae --data synthetic:2 --out {tmp}/vae --no-progress"
_COLLECT = "collect --task reach_target --episodes 1 --out {tmp}/ds --quiet"
_SERVE = "serve --checkpoint {model}"
_FLIP_WEIGHTS = model_copy(lambda m: flip_byte(m / "diffusion_pytorch_model.safetensors"))

# fmt: off
CASES: list[Case] = [
    # collect
    Case("collect-zero-episodes", "collect --task reach_target --episodes 0 --out {tmp}/ds"),
    Case("collect-unknown-task", f"{_COLLECT} --task fly_to_the_moon"),
    Case("collect-unknown-camera", f"{_COLLECT} --cameras front,ceiling"),
    Case("collect-unknown-split", f"{_COLLECT} --split validation"),
    Case("collect-image-size-too-small", f"{_COLLECT} --image-size 32"),
    Case("collect-out-is-a-file", _COLLECT, a_file("ds")),
    Case("collect-missing-calibration", f"{_COLLECT} --calibration {{tmp}}/calib.json"),
    Case("collect-corrupt-calibration", f"{_COLLECT} --calibration {{tmp}}/calib.json",
         a_file("calib.json", "{")),
    Case("collect-max-attempts-nan", f"{_COLLECT} --max-attempts nan"),
    Case("collect-workers-out-of-range", f"{_COLLECT} --workers 1000"),
    # dataset
    Case("dataset-check-missing-folder", "dataset check {tmp}/nowhere"),
    Case("dataset-check-a-file", "dataset check {tmp}/ds", a_file("ds")),
    Case("dataset-check-missing-info-json", "dataset check {tmp}/ds",
         dataset_copy(lambda d: (d / "meta" / "info.json").unlink())),
    Case("dataset-check-corrupt-info-json", "dataset check {tmp}/ds",
         dataset_copy(lambda d: (d / "meta" / "info.json").write_text('{"fps": 10,'))),
    Case("dataset-check-lerobot-v2.1", "dataset check {tmp}/v21", v21_dataset),
    Case("dataset-check-flipped-byte-in-video", "dataset check --full {tmp}/ds",
         dataset_copy(lambda d: flip_byte(next((d / "videos").rglob("*.mp4")), 0.9)), expect=1),
    Case("dataset-info-missing-folder", "dataset info {tmp}/nowhere"),
    Case("dataset-info-corrupt-info-json", "dataset info {tmp}/ds",
         dataset_copy(lambda d: (d / "meta" / "info.json").write_text("[]"))),
    Case("dataset-info-lerobot-v2.1", "dataset info {tmp}/v21", v21_dataset),
    Case("dataset-convert-negative-limit", "dataset convert {tmp}/src {tmp}/dst --limit -1"),
    Case("dataset-convert-missing-source", "dataset convert {tmp}/src {tmp}/dst"),
    Case("dataset-convert-into-itself", "dataset convert {ds} {ds}", dataset),
    Case("dataset-convert-lerobot-v2.1", "dataset convert {tmp}/v21 {tmp}/dst", v21_dataset),
    Case("dataset-convert-fps-nan", "dataset convert {ds} {tmp}/dst --fps nan", dataset),
    Case("dataset-convert-corrupt-rlbench-camera", "dataset convert {tmp}/rlbench {tmp}/dst --kind rlbench",
         rlbench_with_text_intrinsics),
    Case("dataset-convert-robot-without-calibration", "dataset convert {ds} {tmp}/dst --kind robot", dataset),
    Case("dataset-convert-unknown-kind", "dataset convert {ds} {tmp}/dst --kind mystery", dataset),
    Case("dataset-convert-destination-is-a-file", "dataset convert {ds} {tmp}/dst",
         lambda tmp: (a_file("dst")(tmp), dataset(tmp))[1]),
    Case("dataset-restore-calibration-from-itself", "dataset restore-calibration {ds} --from {ds}", dataset),
    Case("dataset-restore-calibration-missing-source",
         "dataset restore-calibration {ds} --from {tmp}/nowhere", dataset),
    Case("dataset-unwrap-euler-missing-folder", "dataset unwrap-euler {tmp}/nowhere"),
    Case("dataset-unwrap-euler-lerobot-v2.1", "dataset unwrap-euler {tmp}/v21", v21_dataset),
    # train
    Case("train-zero-steps", f"{_TRAIN} --steps 0"),
    Case("train-negative-batch-size", f"{_TRAIN} --batch-size -4"),
    Case("train-lr-inf", f"{_TRAIN} --lr inf"),
    Case("train-betas-nan", f"{_TRAIN} --betas nan 0.99"),
    Case("train-betas-one-value", f"{_TRAIN} --betas 0.9"),
    Case("train-unknown-mixed-precision", f"{_TRAIN} --mixed-precision fp8"),
    Case("train-unknown-config", "train --config huge --data synthetic:2 --out {tmp}/run"),
    Case("train-unknown-model-field", f"{_TRAIN} --model.transformer.num_wings 2"),
    Case("train-bad-model-value", f"{_TRAIN} --model.obs_align maybe"),
    Case("train-model-field-breaks-config", f"{_TRAIN} --model.height 100"),
    Case("train-missing-data", "train --config tiny --data {tmp}/nowhere --out {tmp}/run"),
    Case("train-synthetic-zero", "train --config tiny --data synthetic:0 --out {tmp}/run"),
    Case("train-data-lerobot-v2.1", "train --config tiny --data {tmp}/v21 --out {tmp}/run", v21_dataset),
    Case("train-out-is-a-file", f"{_TRAIN} --steps 1", a_file("run")),
    Case("train-resume-empty-folder", "train --resume {tmp}/run --no-progress", a_folder("run")),
    Case("train-resume-missing-folder", "train --resume {tmp}/run --no-progress"),
    Case("train-init-from-flipped-checkpoint", f"{_TRAIN} --steps 1 --init-from {{tmp}}/model",
         _FLIP_WEIGHTS),
    Case("train-pretrained-missing-folder",
         "train --config wan2.2-ti2v-5b --pretrained {tmp}/wan --data synthetic:2 --out {tmp}/run"),
    # train-vae
    Case("train-vae-zero-batch-size", f"{_VAE} --batch-size 0"),
    Case("train-vae-kl-weight-nan", f"{_VAE} --kl-weight nan"),
    Case("train-vae-resume-empty-folder", f"{_VAE} --resume", a_folder("vae")),
    Case("train-vae-missing-data", "train-vae --data {tmp}/nowhere --out {tmp}/vae"),
    # eval, eval-generation
    Case("eval-unknown-task", "eval --task juggle --policy expert --out {tmp}/eval"),
    Case("eval-guidance-nan", f"{_EVAL} --guidance nan"),
    Case("eval-image-size-too-small", f"{_EVAL} --image-size 16 --episodes 1"),
    Case("eval-workers-out-of-range", f"{_EVAL} --workers 257"),
    Case("eval-decode-tolerance-nan", f"{_EVAL} --decode-tolerance-px nan"),
    Case("eval-unknown-view",
         "eval --task reach_target --checkpoint {model} --out {tmp}/eval --views front ceiling", model_dir),
    Case("eval-unknown-policy", "eval --task reach_target --policy oracle --out {tmp}/eval"),
    Case("eval-missing-checkpoint", "eval --task reach_target --checkpoint {tmp}/nowhere --out {tmp}/eval"),
    Case("eval-flipped-byte-in-checkpoint",
         "eval --task reach_target --checkpoint {tmp}/model --out {tmp}/eval --episodes 1", _FLIP_WEIGHTS),
    Case("eval-generation-guidance-nan",
         "eval-generation --checkpoint {model} --data {ds} --out {tmp}/gen --guidance nan",
         lambda tmp: {**model_dir(tmp), **dataset(tmp)}),
    Case("eval-generation-one-episode", "eval-generation --checkpoint {model} --data {ds} --out {tmp}/gen",
         lambda tmp: {**model_dir(tmp), **dataset(tmp)}),
    Case("eval-generation-missing-data",
         "eval-generation --checkpoint {model} --data {tmp}/ds --out {tmp}/gen", model_dir),
    # export
    Case("export-missing-checkpoint", "export --checkpoint {tmp}/nowhere --out {tmp}/out"),
    Case("export-flipped-byte-in-trainer-checkpoint", "export --checkpoint {tmp}/run --out {tmp}/out",
         trainer_checkpoint_copy),
    Case("export-missing-recipe", "export --checkpoint {run} --out {tmp}/out --recipe {tmp}/RECIPE.md",
         run_dir),
    Case("export-cpu-hours-negative", "export --checkpoint {run} --out {tmp}/out --cpu-hours -1", run_dir),
    # serve: each fails before a server starts (one that would serve is stopped and fails the check)
    Case("serve-port-out-of-range", f"{_SERVE} --port 70000", model_dir),
    Case("serve-port-negative", f"{_SERVE} --port -1", model_dir),
    Case("serve-port-in-use", f"{_SERVE} --port {{port}}", lambda tmp: {**model_dir(tmp), **busy_port(tmp)}),
    Case("serve-address-not-on-this-machine", f"{_SERVE} --host 192.0.2.1 --port 8765", model_dir),
    Case("serve-public-host-without-token", f"{_SERVE} --host 0.0.0.0 --port 0", model_dir),
    Case("serve-missing-checkpoint", "serve --checkpoint {tmp}/nowhere --port 0"),
    Case("serve-flipped-byte-in-checkpoint", "serve --checkpoint {tmp}/model --port 0", _FLIP_WEIGHTS),
    Case("serve-bad-workspace", f"{_SERVE} --workspace 0,0,0,1,1", model_dir),
    Case("serve-max-message-zero", f"{_SERVE} --max-message-mb 0", model_dir),
    Case("serve-control-hz-inf", f"{_SERVE} --control-hz inf", model_dir),
    Case("serve-execute-beyond-horizon", f"{_SERVE} --port 0 --execute 1000", model_dir),
    Case("serve-missing-calibration", f"{_SERVE} --port 0 --calibration {{tmp}}/calib.json", model_dir),
    # calibrate
    Case("calibrate-intrinsics-no-images", "calibrate intrinsics --images {tmp}/photos --out {tmp}/K.json",
         a_folder("photos")),
    Case("calibrate-intrinsics-bad-board",
         "calibrate intrinsics --images {tmp}/photos --board 7by5 --out {tmp}/K.json", a_folder("photos")),
    Case("calibrate-extrinsics-corrupt-poses",
         "calibrate extrinsics --poses {tmp}/poses.json --images {tmp}/photos --out {tmp}/calib.json",
         lambda tmp: (a_file("poses.json", "[[0, 0")(tmp), a_folder("photos")(tmp))[0]),
    Case("calibrate-overlay-missing-calibration",
         "calibrate overlay --calibration {tmp}/calib.json --camera front --image {tmp}/photo.png "
         "--pose 0.5,0,0.3,3.14,0,0 --out {tmp}/o.png"),
    Case("calibrate-sim-check-zero-poses", "calibrate sim-check --poses 0"),
    Case("calibrate-sim-check-negative-seed", "calibrate sim-check --seed -1 --poses 4 --image-size 64"),
    Case("calibrate-sim-check-unknown-camera", "calibrate sim-check --camera ceiling"),
    # codec
    Case("codec-demo-zero-size", "codec demo --out {tmp}/demo --size 0"),
    Case("codec-demo-noise-nan", "codec demo --out {tmp}/demo --noise nan"),
    Case("codec-demo-zero-views", "codec demo --out {tmp}/demo --views 0"),
    Case("codec-demo-one-frame", "codec demo --out {tmp}/demo --size 64 --frames 1"),
    Case("codec-demo-negative-seed", "codec demo --out {tmp}/demo --size 64 --noise 0.1 --seed -1"),
    Case("codec-demo-out-is-a-file", "codec demo --out {tmp}/demo --size 64 --frames 5", a_file("demo")),
    # plan-memory
    Case("plan-memory-unknown-config", "plan-memory --config gpt-5"),
    Case("plan-memory-zero-gpus", "plan-memory --config tiny --gpus 0"),
    Case("plan-memory-frames-not-1-plus-4k", "plan-memory --config small --frames 4"),
    Case("plan-memory-size-off-the-token-grid", "plan-memory --config tiny --size 33"),
    # embed-text
    Case("embed-text-missing-pretrained", "embed-text --pretrained {tmp}/wan --text 'pick up the cube'"),
    # ladder
    Case("ladder-unknown-rung", "ladder --task reach_target --rungs expert,telepathy --out {tmp}/ladder"),
    Case("ladder-zero-episodes", "ladder --task reach_target --rungs expert --episodes 0 --out {tmp}/ladder"),
    Case("ladder-image-size-too-small",
         "ladder --task reach_target --rungs expert --episodes 1 --image-size 8 --out {tmp}/ladder "
         "--checkpoint {model} --perception-scenes 0 --follow-scenes 0", model_dir),
    # baseline
    Case("baseline-unknown-kind", "baseline train --kind gpt --data {ds} --out {tmp}/bc", dataset),
    Case("baseline-lowdim-unknown-model-config",
         "baseline train --kind lowdim --data {ds} --out {tmp}/lowdim --model-config huge", dataset),
    Case("baseline-missing-data", "baseline train --kind bc --data {tmp}/nowhere --out {tmp}/bc"),
    Case("baseline-negative-seed",
         "baseline train --kind bc --data {ds} --out {tmp}/bc --seed -1 --max-steps 1", dataset),
    Case("baseline-zero-minutes", "baseline train --kind bc --data {ds} --out {tmp}/bc --minutes 0", dataset),
    # report
    Case("report-missing-run", "report {tmp}/nowhere"),
    Case("report-corrupt-results-json", "report {tmp}/run", report_with_corrupt_results),
    Case("report-negative-max-videos", "report {tmp}/run --max-videos -1", a_folder("run")),
    # demo
    Case("demo-zero-episodes", "demo --out {tmp}/demo --episodes 0"),
    Case("demo-unknown-task", "demo --out {tmp}/demo --task juggle"),
    Case("demo-out-is-a-file", "demo --out {tmp}/demo", a_file("demo")),
    Case("demo-baseline-minutes-nan", "demo --out {tmp}/demo --baseline-minutes nan"),
    Case("demo-negative-seed", "demo --out {tmp}/demo --seed -3"),
    Case("demo-unknown-skip-stage", "demo --out {tmp}/demo --skip lunch"),
    # import-release
    Case("import-release-missing-source",
         "import-release {tmp}/release.ckpt --wan {tmp}/wan --out {tmp}/out"),
    # the command line itself
    Case("unknown-command", "fly"),
]
# fmt: on


# ---------------------------------------------------------------- running


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in filenames + dirnames:
                p = Path(dirpath) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                out[str(p)] = (st.st_size, st.st_mtime_ns) if p.is_file() else (-1, 0)
    return out


def _lines(text: str) -> list[str]:
    """Non-empty lines; of a progress bar redrawn with \\r, its last state."""
    return [s for s in (line.split("\r")[-1].strip() for line in text.split("\n")) if s]


class _WouldServe(Exception):
    pass


class _CaseTimeout(Exception):
    pass


CASE_TIMEOUT_S = 60


async def _refuse_to_serve(self, *args, **kwargs):
    raise _WouldServe("bad_inputs: this case would have started a server")


def run_case(case: Case, tmp: Path, shared: Path) -> Result:
    """Run one case in the empty folder ``tmp`` (its working directory while it runs)."""
    from actionimages.cli import main
    from actionimages.serve import PolicyServer

    subs = {"tmp": str(tmp)}
    if case.setup is not None:
        subs.update(case.setup(tmp) or {})
    words = shlex.split(case.argv) if isinstance(case.argv, str) else case.argv
    argv = [a.format(**subs) for a in words]

    def clean(text: str) -> str:
        named = [(str(tmp), "TMP"), (str(shared), "SHARED"), (str(ROOT), "REPO")]
        named += [(v, k.upper()) for k, v in subs.items() if k != "tmp" and not v.startswith("/")]
        for path, name in list(named):
            named.append((os.path.realpath(path), name))
        for path, name in sorted(named, key=lambda x: -len(x[0])):
            text = text.replace(path, name)
        return re.sub(r"\b[0-9a-f]{12,64}(…|\.\.\.)?", "SHA…", text)  # hashes differ run to run

    def alarm(signum, frame):
        raise _CaseTimeout(f"bad_inputs: still running after {CASE_TIMEOUT_S} s (it did not refuse)")

    before = _snapshot(tmp, shared)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    serve = PolicyServer.serve
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, alarm)  # never run a whole job that should have refused
    try:
        os.chdir(tmp)
        PolicyServer.serve = _refuse_to_serve  # nor block on a real server
        signal.alarm(CASE_TIMEOUT_S)
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(),  # every case shows its warnings, whatever ran before
        ):
            warnings.simplefilter("default")
            try:
                code: int | str = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except BaseException as exc:  # a traceback is what we are looking for
                if isinstance(exc, KeyboardInterrupt):
                    raise
                traceback.print_exc(file=sys.stderr)
                code = f"raised {type(exc).__name__}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        PolicyServer.serve = serve
        os.chdir(cwd)
        while _OPEN:
            _OPEN.pop().close()
    seconds = time.perf_counter() - start
    after = _snapshot(tmp, shared)
    wrote = sorted(
        clean(p) for p in set(before) ^ set(after) | {p for p in before if after.get(p) != before[p]}
    )
    text = err.getvalue()
    lines = _lines(text)
    message = clean(lines[-1]) if lines else ""
    if not lines and code != 0:  # exit 1 of dataset check: its verdict is on stdout
        message = "stdout: " + clean(_lines(out.getvalue())[-1]) if out.getvalue().strip() else ""
    command = "actionimages " + " ".join(shlex.quote(clean(a)) for a in argv)
    return Result(case, command, code, message, len(lines), "Traceback" in text, wrote, seconds, clean(text))


def run_cases(cases: list[Case] | None = None, progress: bool = False) -> list[Result]:
    """Run ``cases`` (default: all), each in a fresh temporary folder; shared fixtures are made once."""
    global _SHARED
    results = []
    with tempfile.TemporaryDirectory(prefix="bad_inputs-") as root:
        _SHARED = Path(root) / "shared"
        _SHARED.mkdir()
        try:
            for case in cases if cases is not None else CASES:
                tmp = Path(root) / "case"
                tmp.mkdir()
                try:
                    results.append(run_case(case, tmp, _SHARED))
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                if progress:
                    r = results[-1]
                    print(f"{r.seconds:6.1f}s {case.name}: {r.code} {r.verdict}", file=sys.stderr, flush=True)
        finally:
            _SHARED = None
    return results


# ---------------------------------------------------------------- the table


def _code_span(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render(results: list[Result], kept: str = "") -> str:
    from actionimages import __version__

    today = datetime.date.today().isoformat()
    ok = sum(r.verdict == "ok" for r in results)
    gaps = [r for r in results if r.verdict.startswith("known gap")]
    failing = [r for r in results if not r.passes]
    lines = [
        "# Bad inputs at the command line",
        "",
        f"Generated on {today} by `python scripts/bad_inputs.py --out docs/results/bad_inputs.md` "
        f"(actionimages {__version__}); do not edit the table by hand: add a case to the script and "
        "rerun it. "
        "`tests/test_bad_inputs.py` runs every case (`--check`) and fails when this file misses one.",
        "",
        "Each case runs `actionimages.cli.main(argv)` in-process in an empty temporary folder (`TMP`; "
        "`SHARED` holds fixtures made once: a one-step `tiny` training run, its export, one collected "
        "`reach_target` episode at 64 px; `REPO` is the repository). The CLI's contract: exit code 2 "
        "and one line on stderr, `actionimages CMD: error: ...`, no traceback, nothing written "
        "(exit 1 where documented: `dataset check` finding problems). *message* is stderr's last line "
        "(stdout's where the answer is there); hashes, which differ run to run, read `SHA…`.",
        "",
        "Below the table, kept as written: issue 13's bad inputs that the command line does not reach "
        "(damaged datasets and checkpoints met by library calls, warnings, conformance checks).",
        "",
        f"{len(results)} cases: {ok} as they should be, {len(gaps)} known gap(s), {len(failing)} failing.",
        "",
        "| case | command | exit | message | check |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        cells = [f"`{r.case.name}`", _code_span(r.command), str(r.code), _code_span(r.message), r.verdict]
        lines.append("| " + " | ".join(c.replace("\n", " ") for c in cells) + " |")
    lines += ["", END_MARKER]
    text = "\n".join(lines) + "\n"
    if kept.strip():
        text += "\n" + kept.lstrip("\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="markdown file to write (text after its end marker is kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 if any case misbehaves")
    parser.add_argument("-k", dest="only", help="run only cases whose name contains this")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-case progress lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="print a failing case's whole stderr")
    args = parser.parse_args(argv)
    if args.out and args.only:
        parser.error("-k runs some of the cases; --out writes the whole table")
    cases = [c for c in CASES if args.only is None or args.only in c.name]
    results = run_cases(cases, progress=not args.quiet)
    if args.out:
        out = Path(args.out)
        kept = ""
        if out.is_file() and END_MARKER in out.read_text():
            kept = out.read_text().split(END_MARKER, 1)[1]
        out.write_text(render(results, kept))
        print(f"wrote {out} ({len(results)} cases)", file=sys.stderr)
    failing = [r for r in results if not r.passes]
    for r in failing:
        print(f"FAIL {r.case.name}: {r.verdict}\n    {r.command}\n    {r.message}", file=sys.stderr)
        if args.verbose:
            print("    " + r.stderr.replace("\n", "\n    "), file=sys.stderr)
    if args.check:
        print(f"{len(results) - len(failing)}/{len(results)} cases pass", file=sys.stderr)
        return 1 if failing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
