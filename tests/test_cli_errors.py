"""Bad input at the command line gives one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from actionimages.cli import main


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"actionimages {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _collect(out: Path, *extra: str) -> list[str]:
    return ["collect", "--task", "reach_target", "--episodes", "1", "--out", str(out), "--quiet", *extra]


# ---------------------------------------------------------------- files that cannot be written


def test_an_output_path_that_is_a_file_is_one_line_naming_it(tmp_path, capsys):
    file = tmp_path / "dataset"
    file.write_text("not a directory")
    assert main(_collect(file)) == 2
    line = _one_error_line(capsys, "collect")
    assert str(file) in line and "File exists" in line
    assert file.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions (the next test simulates them)")
def test_a_read_only_folder_is_one_line_naming_the_path(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        assert main(_collect(ro / "dataset")) == 2
    finally:
        os.chmod(ro, 0o700)
    line = _one_error_line(capsys, "collect")
    assert str(ro / "dataset") in line and "Permission denied" in line


def test_a_permission_error_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    """As root, where a read-only folder is writable: the error a non-root user gets, raised by mkdir."""
    ro = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if Path(self).is_relative_to(ro):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(_collect(ro / "dataset")) == 2
    line = _one_error_line(capsys, "collect")
    assert line == f"actionimages collect: error: {ro / 'dataset'}: Permission denied"


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet"), "/data/x.parquet: No space"),
        (OSError(errno.ENOSPC, "No space left on device"), "[Errno 28] No space left on device"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), "/a -> /b: Invalid cross"),
        (
            RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
            "could not write: disk full or unwritable (PytorchStreamWriter failed",
        ),
    ],
)
def test_write_failures_are_one_line(exc, expected, tmp_path, capsys, monkeypatch):
    import actionimages.cli.collect as collect

    def run(args):
        raise exc

    monkeypatch.setattr(collect, "run", run)
    assert main(_collect(tmp_path / "d")) == 2
    assert expected in _one_error_line(capsys, "collect")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a disk that is always full)")
def test_torch_save_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    import actionimages.cli.collect as collect

    monkeypatch.setattr(collect, "run", lambda args: torch.save({"x": torch.zeros(1000)}, "/dev/full"))
    assert main(_collect(tmp_path / "d")) == 2
    assert "could not write: disk full or unwritable" in _one_error_line(capsys, "collect")


def test_other_runtime_errors_keep_their_traceback(tmp_path, monkeypatch):
    import actionimages.cli.collect as collect

    def run(args):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(collect, "run", run)
    with pytest.raises(RuntimeError, match="a bug"):
        main(_collect(tmp_path / "d"))
