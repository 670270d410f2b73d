"""Atomic writes: the old file survives a failing writer; new files get the umask's mode, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from bso_deploy.io import atomic_write_bytes, atomic_write_json, atomic_write_path


def test_failing_writer_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})

    def broken(path):
        path.write_text("partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write_path(target, broken)
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_written_file_has_the_mode_of_a_normally_created_file(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "data.bin", b"xyz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b"xyz"
