"""Files another process may read are written whole or not at all, durably (``fsync`` of the file
and its folder), through unique temporary names: two writers that start together never mix
their bytes, and a reader never sees a part."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sclc_lightning._files import TEMPORARY_MARK, atomic_path, atomic_write, sha256_file

_WRITER = """
import sys, torch
from safetensors.torch import save
from sclc_lightning._files import atomic_path
path, value, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
data = save({"features": torch.full((2000, 1024), value)})  # 8 MB, as a reference-feature cache
for _ in range(rounds):
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        for start in range(0, len(data), 1 << 20):  # written progressively, as a library would
            handle.write(data[start : start + (1 << 20)])
            handle.flush()
"""


def test_two_processes_write_one_cache_and_every_read_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "reference-features.safetensors"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(value), "10"]) for value in (1.0, 2.0)]
    reads = 0
    deadline = time.monotonic() + 120
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        if path.exists():
            features = load_file(str(path))["features"]  # a part of a file would not parse
            assert features.shape == (2000, 1024)
            assert features.min() == features.max() and float(features[0, 0]) in (1.0, 2.0)
            reads += 1
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert reads > 0
    assert float(load_file(str(path))["features"][0, 0]) in (1.0, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_a_write_is_synced_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "a.json", '{"x": 1}')
    assert len(synced) == 2  # the file, then its folder (so that the rename survives a power loss)
    assert (tmp_path / "a.json").read_text() == '{"x": 1}'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.csv"
    atomic_write(target, b"generation\n0\n")
    with pytest.raises(RuntimeError, match="crash while writing"), atomic_path(target) as tmp:
        tmp.write_text("generation\n0\n1")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"generation\n0\n"
    assert not [p for p in tmp_path.iterdir() if TEMPORARY_MARK in p.name]


def test_temporary_names_differ_and_digests_match_hashlib(tmp_path: Path) -> None:
    import hashlib

    with atomic_path(tmp_path / "x") as first, atomic_path(tmp_path / "x") as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_bytes(b"a")
        second.write_bytes(b"b")
    assert (tmp_path / "x").read_bytes() == b"a"  # the last rename wins (the outer block ends last)
    data = torch.arange(10).numpy().tobytes()
    (tmp_path / "y").write_bytes(data)
    assert sha256_file(tmp_path / "y", chunk=3) == hashlib.sha256(data).hexdigest()
