"""Every kind of damage to a run directory is found before anything reads it, naming the file."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.synthetic import SyntheticStore

N = 30


def _store(root: Path) -> tuple[SyntheticStore, RealData]:
    items = [(torch.full((2,), float(i)), i % 3, f"name{i}") for i in range(N)]
    real = RealData(items, ItemCodec.infer(items[0], condition_field=1))
    store = SyntheticStore(root)
    store.create("run", {}, real.codec)
    for generation in (1, 2):
        batch = SyntheticBatch(torch.randn(12, 2), torch.arange(12) * 2)
        store.write_generation(
            generation,
            batch,
            real,
            shard_rows=5,
            sampled_at_step=generation,
            settings={"seed": 0},
            seconds_sampling=0.0,
            seconds_correcting=0.0,
        )
    store.compact()  # the records in manifest.json, which the damage below edits
    return store, real


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def _write_manifest(root: Path, payload: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(payload))


def _set_record(root: Path, change: Callable[[dict[str, Any]], None], generation: int = 1) -> None:
    payload = _manifest(root)
    change(payload["generations"][generation - 1])
    _write_manifest(root, payload)


def _redigest(root: Path, shard: str = "shard_00001.safetensors") -> None:
    """Record the damaged file's new digest: only the deeper checks can find the damage then."""
    digest = hashlib.sha256((root / "gen_0001" / shard).read_bytes()).hexdigest()

    def change(record: dict[str, Any]) -> None:
        for entry in record["shards"]:
            if entry[0] == shard:
                entry[2] = digest

    _set_record(root, change)


def _flip_byte(root: Path) -> None:
    path = root / "gen_0001" / "shard_00001.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def _zero_block(root: Path) -> None:
    path = root / "gen_0001" / "shard_00001.safetensors"
    data = bytearray(path.read_bytes())
    data[-24:-8] = bytes(16)
    path.write_bytes(bytes(data))


def _truncate(root: Path, redigest: bool = False) -> None:
    path = root / "gen_0001" / "shard_00001.safetensors"
    path.write_bytes(path.read_bytes()[:-20])
    if redigest:
        _redigest(root)


def _rewrite_shard(root: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    path = root / "gen_0001" / "shard_00001.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    _redigest(root)


def _nan(tensors: dict[str, torch.Tensor]) -> None:
    tensors["data"][2, 0] = float("nan")


def _bad_source(tensors: dict[str, torch.Tensor]) -> None:
    tensors["source_index"][0] = N + 5


def _extra_tensor(tensors: dict[str, torch.Tensor]) -> None:
    tensors["payload"] = torch.zeros(5)


def _absolute_name(root: Path) -> None:
    _set_record(root, lambda r: r["shards"][0].__setitem__(0, "/etc/passwd"))


def _escaping_name(root: Path) -> None:
    _set_record(root, lambda r: r["shards"][0].__setitem__(0, "../gen_0002/shard_00000.safetensors"))


def _drop_shard_entry(root: Path) -> None:
    def change(record: dict[str, Any]) -> None:
        record["shards"].pop()
        record["count"] -= 2

    _set_record(root, change)


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("flipped byte", _flip_byte, r"gen_0001/shard_00001\.safetensors has SHA-256 .* the manifest records"),
    ("zeroed block", _zero_block, r"gen_0001/shard_00001\.safetensors has SHA-256"),
    ("truncated shard", _truncate, r"gen_0001/shard_00001\.safetensors has SHA-256"),
    (
        "truncated shard, digest updated",
        lambda r: _truncate(r, redigest=True),
        r"gen_0001/shard_00001\.safetensors cannot be read as safetensors",
    ),
    ("NaN in a shard", lambda r: _rewrite_shard(r, _nan), r"shard_00001\.safetensors: 1 rows of 'data' hold NaN"),
    (
        "source index out of range",
        lambda r: _rewrite_shard(r, _bad_source),
        r"shard_00001\.safetensors: source_index holds .* outside the 30 real items",
    ),
    ("extra tensor", lambda r: _rewrite_shard(r, _extra_tensor), r"shard_00001\.safetensors holds tensors"),
    (
        "row count lowered",
        lambda r: _set_record(r, lambda rec: (rec["shards"][1].__setitem__(1, 4), rec.__setitem__("count", 11))),
        r"shard_00001\.safetensors: tensor 'data' has \(5,\) rows, the manifest records 4",
    ),
    (
        "row count raised",
        lambda r: _set_record(r, lambda rec: rec["shards"][1].__setitem__(1, 6)),
        r"gen_0001: the manifest records 12 items for generation 1 but shards of 13 rows",
    ),
    ("shard entry dropped", _drop_shard_entry, r"gen_0001 holds files the manifest does not record"),
    ("shard file deleted", lambda r: (r / "gen_0001" / "shard_00002.safetensors").unlink(), r"gen_0001 lacks files"),
    ("extra file", lambda r: (r / "gen_0001" / "notes.txt").write_text("x"), r"gen_0001 holds files the manifest"),
    ("generation folder deleted", lambda r: __import__("shutil").rmtree(r / "gen_0001"), r"gen_0001 is missing"),
    ("strings changed", lambda r: (r / "gen_0001" / "strings.json").write_text("{}"), r"strings\.json has SHA-256"),
    (
        "absolute shard name",
        _absolute_name,
        r"manifest\.json: generation record 0 is damaged: shard name '/etc/passwd'",
    ),
    ("escaping shard name", _escaping_name, r"manifest\.json: generation record 0 is damaged: shard name '\.\./gen"),
    ("manifest not JSON", lambda r: (r / "manifest.json").write_text("{oops"), r"manifest\.json is not valid JSON"),
    (
        "record field of the wrong type",
        lambda r: _set_record(r, lambda rec: rec.__setitem__("count", "12")),
        r"manifest\.json: generation record 0 is damaged: `count` is '12'",
    ),
    (
        "records out of order",
        lambda r: _write_manifest(r, {**_manifest(r), "generations": _manifest(r)["generations"][::-1]}),
        r"manifest\.json: the generation records are not in order",
    ),
]


@pytest.mark.parametrize(("damage", "match"), [(d, m) for _, d, m in CASES], ids=[name for name, _, _ in CASES])
def test_damage_is_found_and_named(tmp_path: Path, damage: Callable[[Path], None], match: str) -> None:
    store, real = _store(tmp_path)
    for record in store.records().values():  # intact: every check passes
        store.verify(record, real.codec, N)
    damage(tmp_path)
    fresh = SyntheticStore(tmp_path)  # what a resumed run opens
    with pytest.raises(RunDirectoryError, match=match):
        for record in fresh.records().values():
            fresh.open_generation(record, real.codec, N)


def test_checkpoint_records_are_compared(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    manifest = store.read_manifest()
    assert manifest is not None and {g: r.count for g, r in manifest.records().items()} == {1: 12, 2: 12}
    expected = [[g, r.count, r.digest()] for g, r in manifest.records().items()]
    store.check_expected(expected, manifest)  # unchanged: fine
    dropped = manifest.__class__(manifest.run_id, manifest.config, manifest.item, manifest.generations[1:])
    with pytest.raises(RunDirectoryError, match=r"has no record of generation 1, which the checkpoint expects"):
        store.check_expected(expected, dropped)
    altered = [[1, 11, "0" * 64], expected[1]]
    with pytest.raises(RunDirectoryError, match=r"record of generation 1 is not the one the checkpoint saw \(11 items"):
        store.check_expected(altered, manifest)
    with pytest.raises(RunDirectoryError, match=r"records generations \[1\], which the checkpoint did not see"):
        store.check_expected(expected[1:], manifest)  # a record inserted before the checkpoint's last


def test_stale_leftovers_are_removed_when_a_store_is_opened(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    (tmp_path / ".gen_0003.tmp-abc").mkdir()
    (tmp_path / ".gen_0001.stale-abc").mkdir()
    (tmp_path / ".manifest.json.tmp-abc").write_text("{")
    (tmp_path / ".history.jsonl.tmp-abc").write_text("[")
    (tmp_path / ".initial_state.safetensors.tmp-abc").write_text("")
    (tmp_path / "gen_0007").mkdir()  # written, but never recorded
    (tmp_path / ".exchange").mkdir()
    removed = store.remove_stale()
    assert sorted(removed) == [
        ".exchange",
        ".gen_0001.stale-abc",
        ".gen_0003.tmp-abc",
        ".history.jsonl.tmp-abc",
        ".initial_state.safetensors.tmp-abc",
        ".manifest.json.tmp-abc",
        "gen_0007",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen_0001", "gen_0002", "manifest.json"]


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    store, real = _store(tmp_path)

    def full(descriptor: int) -> None:  # the disk fills up when the data is flushed to it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError, match=r"No space left on device .*: '.*\.gen_0003\.tmp-.*shard_00000\.safetensors'"):
        store.write_generation(
            3,
            SyntheticBatch(torch.zeros(2, 2), torch.arange(2)),
            real,
            shard_rows=5,
            sampled_at_step=3,
            settings={},
            seconds_sampling=0.0,
            seconds_correcting=0.0,
        )
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen_0001", "gen_0002", "manifest.json"]  # nothing left


def _replace_with_fifo(path: Path) -> None:
    import os

    path.unlink()
    os.mkfifo(path)


def _replace_with_link(path: Path, target: str) -> None:
    path.unlink()
    path.symlink_to(target)


def _link_generation_folder(root: Path) -> None:
    import shutil

    elsewhere = root.parent / "elsewhere"
    shutil.move(str(root / "gen_0002"), str(elsewhere))
    (root / "gen_0002").symlink_to(elsewhere, target_is_directory=True)


SPECIAL = [
    ("shard is a FIFO", lambda r: _replace_with_fifo(r / "gen_0001" / "shard_00000.safetensors"), r"is a FIFO"),
    (
        "shard links to /dev/zero",
        lambda r: _replace_with_link(r / "gen_0001" / "shard_00001.safetensors", "/dev/zero"),
        r"shard_00001.safetensors: is a symbolic link",
    ),
    ("strings are a FIFO", lambda r: _replace_with_fifo(r / "gen_0002" / "strings.json"), r"strings.json: is a FIFO"),
    ("manifest is a FIFO", lambda r: _replace_with_fifo(r / "manifest.json"), r"manifest.json: is a FIFO"),
    (
        "manifest links to /dev/zero",
        lambda r: _replace_with_link(r / "manifest.json", "/dev/zero"),
        r"manifest.json: is a symbolic link",
    ),
    ("generation folder is a link", _link_generation_folder, r"gen_0002: is a symbolic link, not a folder"),
]


@pytest.mark.parametrize(("damage", "match"), [(d, m) for _, d, m in SPECIAL], ids=[n for n, _, _ in SPECIAL])
def test_special_files_are_refused_without_hanging(tmp_path: Path, damage: Callable[[Path], None], match: str) -> None:
    """A FIFO (reading it waits forever), a link to /dev/zero (it never ends) or a linked
    generation folder (it leads out of the run directory) is refused by name, before any read."""
    import threading

    root = tmp_path / "run"
    _, real = _store(root)
    damage(root)
    outcome: list[BaseException | None] = []

    def resume() -> None:
        try:
            fresh = SyntheticStore(root)
            for record in fresh.records().values():
                fresh.open_generation(record, real.codec, N)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    worker = threading.Thread(target=resume, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "reading the run directory hangs"
    (error,) = outcome
    assert isinstance(error, RunDirectoryError) and re.search(match, str(error)), error
    assert "a run directory holds only the files" in str(error) or "manifest is a file the loop wrote" in str(error)


def test_stale_links_are_removed_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "run"
    store, _ = _store(root)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    (root / "gen_0007").symlink_to(precious, target_is_directory=True)  # not recorded: stale
    (root / ".gen_0003.tmp-abc").symlink_to(precious, target_is_directory=True)
    assert sorted(store.remove_stale()) == [".gen_0003.tmp-abc", "gen_0007"]
    assert (precious / "data.txt").read_text() == "keep me"
