"""Run directories on object storage (issue 34, step 4), against the S3 endpoint the tests start:
snapshots written last and "create only", objects verified on read, one writer at a time (a
lease object), a kill before a snapshot leaving the previous state, a fit that is killed and
resumed giving the uninterrupted fit's bits, and ``sclc report`` reading it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sclc_lightning.store import RunDirectoryError, RunDirectoryLocked
from sclc_lightning.store.lease import LeaseLost
from sclc_lightning.store.remote import MARK, RemoteRunDirectory

ROOT = Path(__file__).parents[2]
RECIPE = str(ROOT / "recipes" / "gaussian_collapse.yaml")


def _remote(bucket: str, local: Path, name: str = "run", **kwargs: Any) -> RemoteRunDirectory:
    return RemoteRunDirectory(f"s3://{bucket}/{name}", local, **kwargs)


def _files(folder: Path) -> dict[str, bytes]:
    """The run's files in a local copy (not the mark naming the URL it mirrors)."""
    found = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARK)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in found}


def test_snapshots_are_written_last_and_read_back_verified(s3_bucket: tuple[str, Any], tmp_path: Path) -> None:
    bucket, fs = s3_bucket
    writer = _remote(bucket, tmp_path / "w").open()
    (writer.local / "synthetic" / "gen_0001").mkdir(parents=True)
    (writer.local / "synthetic" / "gen_0001" / "shard_00000.safetensors").write_bytes(b"rows of generation 1")
    (writer.local / "synthetic" / ".sclc.lock").write_bytes(b"")  # local only: never published
    (writer.local / ".gen_0002.tmp-abc").write_bytes(b"half-written")  # local only: never published
    assert writer.push().number == 1  # type: ignore[union-attr]
    assert writer.push() is None  # nothing changed: no snapshot
    (writer.local / "manifest.json").write_text("{}")
    assert writer.push().number == 2  # type: ignore[union-attr]
    listed = sorted(p.split(f"{bucket}/run/", 1)[1] for p in fs.find(f"{bucket}/run"))
    assert [p for p in listed if p.startswith("snapshots/")] == ["snapshots/000000001.json", "snapshots/000000002.json"]
    assert len([p for p in listed if p.startswith("objects/")]) == 2  # one object per distinct content

    reader = _remote(bucket, tmp_path / "r")
    assert reader.read().number == 2  # type: ignore[union-attr]
    assert _files(reader.local) == {
        "manifest.json": b"{}",
        "synthetic/gen_0001/shard_00000.safetensors": b"rows of generation 1",
    }
    # a damaged object is refused on read, naming it; nothing half-downloaded is left
    (shard_object,) = [p for p in fs.find(f"{bucket}/run/objects") if fs.cat_file(p) == b"rows of generation 1"]
    fs.pipe_file(shard_object, b"rows of generation 9")
    with pytest.raises(RunDirectoryError, match="damaged or replaced"):
        _remote(bucket, tmp_path / "r2").read()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    writer.close()


def test_a_kill_before_the_snapshot_leaves_the_previous_state(
    s3_bucket: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, _ = s3_bucket
    writer = _remote(bucket, tmp_path / "w").open()
    (writer.local / "a.bin").write_bytes(b"first")
    writer.push()
    (writer.local / "a.bin").write_bytes(b"second")
    (writer.local / "b.bin").write_bytes(b"new file")

    def killed(*args: Any, **kwargs: Any) -> None:
        if "snapshots/" in str(args[0]):
            raise KeyboardInterrupt("killed after the objects, before the snapshot")
        return original(*args, **kwargs)

    original = writer.fs.pipe_file
    monkeypatch.setattr(writer.fs, "pipe_file", killed)
    with pytest.raises(KeyboardInterrupt):
        writer.push()
    monkeypatch.undo()
    writer.close()
    # the next fit starts from snapshot 1: the local copy is made that state again
    again = _remote(bucket, tmp_path / "w").open()
    assert again.snapshot.number == 1 and _files(again.local) == {"a.bin": b"first"}  # type: ignore[union-attr]
    (again.local / "a.bin").write_bytes(b"second")
    assert again.push().number == 2  # type: ignore[union-attr]  # the orphaned object is simply reused
    again.close()


def test_one_writer_at_a_time(s3_bucket: tuple[str, Any], tmp_path: Path) -> None:
    bucket, fs = s3_bucket
    first = _remote(bucket, tmp_path / "a").open()
    with pytest.raises(RunDirectoryLocked, match=rf"process {os.getpid()} on {socket.gethostname()}"):
        _remote(bucket, tmp_path / "b").open()
    first.close()
    second = _remote(bucket, tmp_path / "b").open()  # released: taken at once
    # a fit on another host whose heartbeat lapsed: taken over; that fit then stops at its next snapshot
    record = json.loads(fs.cat_file(f"{bucket}/run/leases/000000002.json"))
    record.update(host="elsewhere", heartbeat=time.time() - 3600)
    fs.pipe_file(f"{bucket}/run/leases/000000002.json", json.dumps(record).encode())
    third = _remote(bucket, tmp_path / "c").open()
    (second.local / "x").write_text("late")
    with pytest.raises(LeaseLost, match="taken over by another fit"):
        second.push()
    # a fit on this host whose process is gone (killed): taken over without waiting
    record = json.loads(fs.cat_file(f"{bucket}/run/leases/000000003.json"))
    third.lease._stop.set()  # its heartbeat would write its own (living) process back
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record.update(pid=int(dead.stdout))
    fs.pipe_file(f"{bucket}/run/leases/000000003.json", json.dumps(record).encode())
    fourth = _remote(bucket, tmp_path / "d").open()
    assert fourth.lease.number == 4
    fourth.close()


def test_a_second_writer_never_overwrites_a_snapshot(s3_bucket: tuple[str, Any], tmp_path: Path) -> None:
    bucket, _ = s3_bucket
    one, two = _remote(bucket, tmp_path / "one"), _remote(bucket, tmp_path / "two")  # no lease: the last guard
    (one.local / "f").parent.mkdir(parents=True)
    (one.local / "f").write_text("one")
    one.push()
    two.read()
    (two.local / "f").write_text("two")
    two.push()
    (one.local / "f").write_text("one again")
    with pytest.raises(RunDirectoryError, match="snapshot 2, written by another fit"):
        one.push()
    reader = _remote(bucket, tmp_path / "r")
    assert reader.read().number == 2 and _files(reader.local) == {"f": b"two"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ({"../escape": ["0" * 64, 1]}, "leaves the run folder"),
        ({"/etc/passwd": ["0" * 64, 1]}, "leaves the run folder"),
        ({"a": ["not a digest", 1]}, "no SHA-256 digest"),
        ({"a": ["0" * 64, -1]}, "no size"),
        ({"a": ["0" * 64, 1], "a/b": ["0" * 64, 1]}, "'a' is both a file and a folder"),
    ],
)
def test_a_hostile_snapshot_is_refused(
    s3_bucket: tuple[str, Any], tmp_path: Path, files: dict[str, Any], said: str
) -> None:
    bucket, fs = s3_bucket
    snapshot = {"format": 1, "number": 1, "files": files}
    fs.pipe_file(f"{bucket}/run/snapshots/000000001.json", json.dumps(snapshot).encode())
    with pytest.raises(RunDirectoryError, match=said):
        _remote(bucket, tmp_path / "r").read()
    assert not (tmp_path / "etc").exists() and not (tmp_path / "escape").exists()


def test_a_multi_process_fit_on_object_storage_is_refused(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from sclc_lightning.callbacks import RemoteSync

    remote = RemoteRunDirectory((tmp_path / "store").as_uri(), tmp_path / "work")
    with pytest.raises(NotImplementedError, match="takes one process for now"):
        RemoteSync(remote).setup(SimpleNamespace(world_size=2), None, "fit")  # type: ignore[arg-type]
    RemoteSync(remote).setup(SimpleNamespace(world_size=1), None, "fit")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "said"), [("s3://", "names no bucket or folder"), ("memory://run", "ends with the process")]
)
def test_a_url_that_cannot_hold_a_run_is_refused(url: str, said: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=said):
        RemoteRunDirectory(url, tmp_path / "work")
    assert not list(tmp_path.iterdir())
