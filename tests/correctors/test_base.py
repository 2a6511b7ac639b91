import pytest
import torch

import sclc_lightning.correctors
from sclc_lightning.correctors import (
    Corrector,
    available_correctors,
    get_corrector_class,
    make_corrector,
    register_corrector,
)


def test_every_builtin_is_exported_documented_and_tested() -> None:
    """Read from the registry: a new built-in needs its module, its test and its docs row."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    docs = (root / "docs" / "correctors.md").read_text()
    tests = "".join(path.read_text() for path in (root / "tests").rglob("test_*.py"))
    builtins = [n for n in available_correctors() if get_corrector_class(n).__module__.startswith("sclc_lightning.")]
    assert {"kmeans", "optimal_transport", "curate", "verify", "physics"} <= set(builtins)
    for name in builtins:
        cls = get_corrector_class(name)
        assert cls.name == name and getattr(sclc_lightning.correctors, cls.__name__) is cls, name
        assert f"| `{name}` |" in docs, f"docs/correctors.md has no row for {name!r}"
        assert f'"{name}"' in tests or cls.__name__ in tests, f"no test names {name!r}"


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


def test_custom_corrector_in_a_loop_sets_up_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from helpers import GaussianModel, gaussian_points, loader, trainer

    from sclc_lightning import SelfConsumingLoop

    @register_corrector("test_shrink_to_mean")
    class ShrinkToMean(Corrector):
        setups = 0

        def setup(self, reference, generator):  # type: ignore[no-untyped-def]
            type(self).setups += 1
            self.centre = reference.data().mean(0)

        def correct(self, batch, *, generation, generator, reference):  # type: ignore[no-untyped-def]
            return self.mix(batch.data, self.centre.expand_as(batch.data))

    points = gaussian_points(40)
    loop = SelfConsumingLoop(
        0.5,
        3,
        images_per_generation=20,
        corrector="test_shrink_to_mean",
        corrector_kwargs={"strength": float("inf")},
        output_dir=tmp_path / "s",
    )
    trainer(tmp_path, [loop]).fit(GaussianModel(), train_dataloaders=loader(points))
    assert ShrinkToMean.setups == 1
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "s" / "gen_0003" / "shard_00000.safetensors"))["data"]
    assert torch.allclose(stored, points.mean(0).expand(20, 2))  # gamma = inf: every point on the mean
