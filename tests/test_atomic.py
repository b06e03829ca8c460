"""actionimages.atomic: files and directories are replaced whole or not at all."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from actionimages.atomic import (
    TMP_PREFIX,
    atomic_dir,
    atomic_path,
    fsync_tree,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def _names(d):
    return sorted(p.name for p in d.iterdir())


def test_write_files_have_the_content_and_leave_no_temporary(tmp_path):
    write_bytes_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_text_atomic(tmp_path / "b.txt", "héllo\n")
    write_json_atomic(tmp_path / "sub" / "c.json", {"k": [1, 2], "t": "é"}, indent=4, ensure_ascii=False)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text() == "héllo\n"
    text = (tmp_path / "sub" / "c.json").read_text()
    assert json.loads(text) == {"k": [1, 2], "t": "é"} and text.startswith('{\n    "k"') and "é" in text
    assert _names(tmp_path) == ["a.bin", "b.txt", "sub"] and _names(tmp_path / "sub") == ["c.json"]
    write_text_atomic(tmp_path / "b.txt", "replaced")  # over an existing file
    assert (tmp_path / "b.txt").read_text() == "replaced" and _names(tmp_path) == ["a.bin", "b.txt", "sub"]


def test_files_get_the_permissions_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic", "x")
    assert stat.S_IMODE((tmp_path / "atomic").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_safetensors_files_get_the_permissions_of_a_plain_write(tmp_path):
    """safetensors' save_file writes its own 0600 temporary and renames it onto the path it is given."""
    import torch
    from safetensors.torch import save_file

    plain = tmp_path / "plain"
    with open(plain, "w") as f:
        f.write("x")
    mode = stat.S_IMODE(plain.stat().st_mode)
    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"x": torch.zeros(2)}, str(tmp))
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == mode
    with atomic_dir(tmp_path / "model") as tmp:
        save_file({"x": torch.zeros(2)}, str(tmp / "w.safetensors"))
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        (tmp / "run.sh").chmod(0o755)
    assert stat.S_IMODE((tmp_path / "model" / "w.safetensors").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "model" / "run.sh").stat().st_mode) == 0o755 | mode  # exec bits kept


def test_atomic_path_for_writers_by_path_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "x.npy") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(TMP_PREFIX) and tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2] and _names(tmp_path) == ["x.npy"]
    with atomic_path(tmp_path / "video", suffix=".mp4") as tmp:
        assert tmp.suffix == ".mp4"
        tmp.write_bytes(b"v")
    assert (tmp_path / "video").read_bytes() == b"v"


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "f.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"v": 1} and _names(tmp_path) == ["f.json"]
    with pytest.raises(TypeError):  # not JSON-serialisable: nothing is written at all
        write_json_atomic(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1} and _names(tmp_path) == ["f.json"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin") as tmp:
        raise RuntimeError("before anything is written")
    assert _names(tmp_path) == ["f.json"]  # a target that did not exist stays absent


def test_atomic_dir_creates_and_replaces_a_directory(tmp_path):
    dst = tmp_path / "model"
    with atomic_dir(dst) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(TMP_PREFIX) and _names(tmp) == []
        assert not dst.exists()  # not visible before the block completes
        (tmp / "weights.bin").write_bytes(b"old")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "config.json").write_text("{}")
    assert _names(dst) == ["sub", "weights.bin"] and _names(tmp_path) == ["model"]
    with atomic_dir(dst) as tmp:
        assert (dst / "weights.bin").read_bytes() == b"old"  # the old one is intact while writing
        (tmp / "weights.bin").write_bytes(b"new")
    assert _names(dst) == ["weights.bin"] and (dst / "weights.bin").read_bytes() == b"new"
    assert _names(tmp_path) == ["model"]  # the old copy is gone
    plain = tmp_path / "plain"
    plain.mkdir()
    assert stat.S_IMODE(dst.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_atomic_dir_keeps_the_old_directory_and_removes_the_temporary(tmp_path):
    dst = tmp_path / "ck"
    with atomic_dir(dst) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(OSError, match="disk full"), atomic_dir(dst) as tmp:
        (tmp / "a.txt").write_text("partial")
        raise OSError("disk full")
    assert (dst / "a.txt").read_text() == "one" and _names(tmp_path) == ["ck"]
    with pytest.raises(OSError), atomic_dir(tmp_path / "fresh"):
        raise OSError("disk full")
    assert _names(tmp_path) == ["ck"]


def test_fsync_tree_accepts_nested_trees(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    (tmp_path / "g").write_text("y")
    fsync_tree(tmp_path)
    assert (tmp_path / "a" / "b" / "f").read_text() == "x" and (tmp_path / "g").read_text() == "y"
