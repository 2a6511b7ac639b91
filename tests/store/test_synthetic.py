import hashlib
import json
import pickle

import pytest
import torch

from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.store.manifest import RunDirectoryError, StoredGeneration, parse_manifest
from sclc_lightning.store.synthetic import SyntheticStore


def _write(store: SyntheticStore, generation: int, batch: SyntheticBatch, real: RealData, shard_rows: int = 10):
    return store.write_generation(
        generation,
        batch,
        real,
        shard_rows=shard_rows,
        sampled_at_step=7,
        settings={"mode": "augment", "corrector": {"name": "kmeans", "strength": 1.0}, "seed": 3},
        seconds_sampling=1.5,
        seconds_correcting=0.5,
    )


def test_generation_round_trip_in_shards(tmp_path) -> None:
    items = [(torch.zeros(2), i, f"s{i}") for i in range(25)]
    real = RealData(items, ItemCodec.infer(items[0]))
    store = SyntheticStore(tmp_path)
    store.create("r", {}, real.codec)
    data = torch.randn(25, 2)
    source = torch.arange(25)
    record = _write(store, 3, SyntheticBatch(data, source), real)
    assert [(s.name, s.rows) for s in record.shards] == [
        ("shard_00000.safetensors", 10),
        ("shard_00001.safetensors", 10),
        ("shard_00002.safetensors", 5),
    ]
    assert all(len(s.sha256) == 64 for s in record.shards) and record.strings_sha256 is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen_0003", "manifest.journal", "manifest.json"]
    ds = store.open_generation(record, real.codec, len(real))
    assert len(ds) == 25
    x, label, name = ds[17]  # the other fields come from the source item
    assert torch.equal(x, data[17]) and label == 17 and name == "s17"
    assert torch.equal(ds.load("data"), data)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive a copy without open handles
    assert torch.equal(clone[24][0], data[24])


def test_rewrite_replaces_atomically_and_manifest(tmp_path) -> None:
    real = RealData([torch.zeros(1)] * 4, ItemCodec.infer(torch.zeros(1)))
    store = SyntheticStore(tmp_path)
    assert store.read_manifest() is None and store.records() == {}
    with pytest.raises(FileNotFoundError, match=r"manifest\.json is missing"):
        _write(store, 1, SyntheticBatch(torch.zeros(3, 1), torch.arange(3)), real)
    store.create("r", {"n": 4}, real.codec)
    _write(store, 1, SyntheticBatch(torch.zeros(3, 1), torch.arange(3)), real)
    _write(store, 2, SyntheticBatch(torch.zeros(3, 1), torch.arange(3)), real)
    record = _write(store, 1, SyntheticBatch(torch.ones(4, 1), torch.arange(4)), real)
    # rewriting generation 1 drops the records of later generations (a history being redone)
    assert sorted(store.records()) == [1] and store.records()[1] == record
    ds = store.open_generation(record, real.codec, len(real))
    assert float(ds[3]) == 1.0 and len(ds) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen_0001", "gen_0002", "manifest.journal", "manifest.json"]


def test_manifest_json_keeps_its_keys(tmp_path) -> None:
    real = RealData([torch.zeros(2)] * 4, ItemCodec.infer(torch.zeros(2)))
    store = SyntheticStore(tmp_path)
    store.create("run-a", {"n": 4}, real.codec)
    _write(store, 1, SyntheticBatch(torch.zeros(3, 2), torch.arange(3)), real)
    store.compact()
    payload = json.loads((tmp_path / "manifest.json").read_text())
    assert payload["format"] == 2 and payload["run_id"] == "run-a" and payload["item"] == real.codec.to_json()
    (record,) = payload["generations"]
    assert record["count"] == 3 and record["corrector"] == "kmeans" and record["strength"] == 1.0
    assert record["mode"] == "augment" and record["seed"] == 3 and record["sampled_at_step"] == 7
    digest = hashlib.sha256((tmp_path / "gen_0001" / "shard_00000.safetensors").read_bytes()).hexdigest()
    assert record["shards"] == [["shard_00000.safetensors", 3, digest]]
    manifest = parse_manifest((tmp_path / "manifest.json").read_text(), tmp_path / "manifest.json")
    assert manifest.to_json() == payload and manifest.generations[0] == StoredGeneration.from_json(record)


def _journaled_store(tmp_path, generations: int = 4):  # type: ignore[no-untyped-def]
    real = RealData([torch.zeros(1)] * 4, ItemCodec.infer(torch.zeros(1)))
    store = SyntheticStore(tmp_path)
    store.create("r", {"n": 4}, real.codec)
    for generation in range(1, generations + 1):
        _write(store, generation, SyntheticBatch(torch.full((3, 1), float(generation)), torch.arange(3)), real)
    return store, real


def test_records_are_appended_to_a_journal_and_read_back_whole(tmp_path) -> None:
    import json

    store, _ = _journaled_store(tmp_path)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["generations"] == []  # the records are in the journal, one line each
    assert len((tmp_path / "manifest.journal").read_text().splitlines()) == 1 + 4
    fresh = SyntheticStore(tmp_path)  # what another process reads
    assert sorted(fresh.records()) == [1, 2, 3, 4] and fresh.records() == store.records()
    store.mark(checkpointed=True)  # any other change writes manifest.json whole, the journal goes
    assert not (tmp_path / "manifest.journal").exists()
    written = json.loads((tmp_path / "manifest.json").read_text())["generations"]
    assert [g["generation"] for g in written] == [1, 2, 3, 4]
    assert sorted(SyntheticStore(tmp_path).records()) == [1, 2, 3, 4]


def test_a_journal_line_cut_short_is_dropped_and_a_damaged_one_refused(tmp_path) -> None:
    _journaled_store(tmp_path)
    journal = tmp_path / "manifest.journal"
    text = journal.read_text()
    journal.write_text(text[:-40])  # the last append cut short by a crash: that generation is redone
    assert sorted(SyntheticStore(tmp_path).records()) == [1, 2, 3]
    lines = text.splitlines(keepends=True)
    lines[2] = lines[2].replace('"count": 3', '"count": 2')  # a record changed, its digest not
    journal.write_text("".join(lines))
    with pytest.raises(RunDirectoryError, match=r"manifest\.journal: line 3 is damaged"):
        SyntheticStore(tmp_path).records()


def test_a_journal_of_another_manifest_version_is_ignored(tmp_path) -> None:
    """A crash after ``manifest.json`` was written whole but before the journal was removed: the
    journal extends the previous version and must not add its records again."""
    import shutil

    store, _ = _journaled_store(tmp_path)
    shutil.copy(tmp_path / "manifest.journal", tmp_path / "old.journal")
    store.write_manifest(store.read_manifest().up_to(2))  # type: ignore[union-attr]
    shutil.move(str(tmp_path / "old.journal"), str(tmp_path / "manifest.journal"))
    assert sorted(SyntheticStore(tmp_path).records()) == [1, 2]


def test_the_journal_is_folded_into_the_manifest_every_limit_records(tmp_path, monkeypatch) -> None:
    import sclc_lightning.store.journal as journal_module

    monkeypatch.setattr(journal_module, "JOURNAL_LIMIT", 3)
    _journaled_store(tmp_path, generations=5)
    journal = (tmp_path / "manifest.journal").read_text().splitlines()
    assert len(journal) == 1 + 1  # records 1-3 journaled, the 4th folded all into manifest.json, 5 after
    assert sorted(SyntheticStore(tmp_path).records()) == [1, 2, 3, 4, 5]
