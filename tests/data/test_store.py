import pickle

import torch

from sclc_lightning.data.items import ItemCodec
from sclc_lightning.data.store import SyntheticStore


def test_generation_round_trip_in_shards(tmp_path) -> None:
    codec = ItemCodec.infer((torch.zeros(2), 0, "x"))
    store = SyntheticStore(tmp_path)
    data = torch.randn(25, 2)
    labels = torch.arange(25)
    shards = store.write_generation(
        3,
        {"data": data, "source_index": labels, "field.1": labels},
        {"field.2": [f"s{i}" for i in range(25)]},
        shard_rows=10,
    )
    assert shards == [("shard_00000.safetensors", 10), ("shard_00001.safetensors", 10), ("shard_00002.safetensors", 5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen_0003"]  # no temporary folder left
    ds = store.open_generation(3, shards, codec)
    assert len(ds) == 25
    x, label, name = ds[17]
    assert torch.equal(x, data[17]) and label == 17 and name == "s17"
    assert torch.equal(ds.load("data"), data)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive a copy without open handles
    assert torch.equal(clone[24][0], data[24])


def test_rewrite_replaces_atomically_and_manifest(tmp_path) -> None:
    store = SyntheticStore(tmp_path)
    store.write_generation(1, {"data": torch.zeros(3, 1), "source_index": torch.arange(3)}, {}, 10)
    store.write_generation(1, {"data": torch.ones(4, 1), "source_index": torch.arange(4)}, {}, 10)
    ds = store.open_generation(1, [("shard_00000.safetensors", 4)], ItemCodec.infer(torch.zeros(1)))
    assert float(ds[3]) == 1.0
    assert store.read_manifest() is None
    store.write_manifest({"run_id": "r", "generations": []})
    assert store.read_manifest() == {"run_id": "r", "generations": [], "format": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen_0001", "manifest.json"]
