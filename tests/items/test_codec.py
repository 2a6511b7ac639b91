import pytest
import torch

from sclc_lightning.items.codec import ItemCodec, SyntheticBatch


def test_tensor_items() -> None:
    codec = ItemCodec.infer(torch.zeros(3, 2))
    assert (codec.container, codec.data_shape, codec.data_dtype) == ("tensor", (3, 2), torch.float32)
    assert codec.other_keys == () and torch.equal(codec.build(torch.ones(3, 2), {}), torch.ones(3, 2))


def test_tuple_items_round_trip_through_storage() -> None:
    items = [(torch.full((2,), float(i)), i, f"p{i}", 0.5 * i, i % 2 == 0) for i in range(3)]
    codec = ItemCodec.infer(items[0], condition_field=1)
    tensors, strings = codec.encode_fields(items)
    assert tensors["field.1"].dtype == torch.int64 and strings == {"field.2": ["p0", "p1", "p2"]}
    row = {name: t[2] for name, t in tensors.items()} | {"field.2": "p2"}
    rebuilt = codec.build(torch.zeros(2), row)
    assert isinstance(rebuilt, tuple) and rebuilt[1:] == (2, "p2", 1.0, True) and type(rebuilt[1]) is int
    assert codec.collate_conditions(items).tolist() == [0, 1, 2]
    assert ItemCodec.from_json(codec.to_json()) == codec


def test_dict_items_default_to_first_tensor_key() -> None:
    codec = ItemCodec.infer({"label": 3, "image": torch.zeros(1, 4, 4)})
    assert codec.data_key == "image" and codec.container == "dict"


@pytest.mark.parametrize(
    ("item", "kwargs", "error", "match"),
    [
        ((torch.zeros(1), [1, 2]), {}, TypeError, "Field 1 of the real items has type list"),
        ((torch.zeros(1), 1), {"data_field": 5}, ValueError, r"`data_field` must be one of \[0, 1\], got 5"),
        ((torch.zeros(1), 1), {"data_field": 1}, TypeError, "`data_field` 1 must hold a tensor, got int"),
        (
            (torch.zeros(1), 1),
            {"condition_field": 0},
            ValueError,
            r"`condition_field` must be one of \[1\] or None, got 0",
        ),
        (torch.zeros(1), {"condition_field": 0}, ValueError, "Real items are tensors"),
        (3.0, {}, TypeError, "Real items must be a tensor, a tuple/list of fields or a dict"),
    ],
)
def test_codec_errors(item: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ItemCodec.infer(item, **kwargs)


def test_synthetic_batch_select_and_concat() -> None:
    b = SyntheticBatch(torch.arange(4.0)[:, None], torch.arange(4), ["a", "b", "c", "d"])
    s = b.select(torch.tensor([3, 0, 0]))
    assert s.data.flatten().tolist() == [3, 0, 0] and s.conditions == ["d", "a", "a"]
    c = SyntheticBatch.concat([b, s])
    assert len(c) == 7 and c.source_index.tolist() == [0, 1, 2, 3, 3, 0, 0]
