import pytest
import torch

import sclc_lightning
from sclc_lightning.correctors import (
    Corrector,
    available_correctors,
    get_corrector_class,
    make_corrector,
    register_corrector,
)


def test_builtins_are_registered_and_exported() -> None:
    assert available_correctors()[:6] == [
        "filter",
        "ideal_mixture",
        "identity",
        "kmeans",
        "optimal_transport",
        "random_pairing",
    ]
    for name in ("identity", "optimal_transport", "random_pairing", "ideal_mixture", "kmeans"):
        cls = get_corrector_class(name)
        assert cls.name == name and getattr(sclc_lightning, cls.__name__) is cls


def test_register_and_make() -> None:
    @register_corrector("test_halve")
    class Halve(Corrector):
        def correct(self, batch, *, generation, generator, reference):  # type: ignore[no-untyped-def]
            return batch.data / 2

    made = make_corrector("test_halve", {"strength": 2.0})
    assert (
        isinstance(made, Halve) and made.strength == 2.0 and made.describe() == {"name": "test_halve", "strength": 2.0}
    )
    with pytest.raises(ValueError, match="A corrector is already registered as 'test_halve'"):
        register_corrector("test_halve")(type("Other", (Halve,), {}))
    with pytest.raises(ValueError, match=r"`corrector` must be one of .*, got 'unknown'"):
        make_corrector("unknown")


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "1", True])
def test_strength_validation(bad: object) -> None:
    with pytest.raises(ValueError, match="`strength` must be a number >= 0"):
        get_corrector_class("identity")(strength=bad)  # type: ignore[arg-type]


def test_mix_is_the_convex_blend() -> None:
    c = get_corrector_class("random_pairing")(strength=3.0)
    assert torch.allclose(c.mix(torch.zeros(1), torch.ones(1)), torch.tensor([0.75]))
    assert c.blend == 0.75
