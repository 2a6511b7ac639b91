"""The sampler: found by name, import path or callable, its signature checked against the loop's call."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sclc_lightning.sampler import SamplerError, bind_sampler, describe_sampler


class ZooVAE:
    """Like a widely used VAE zoo: `sample` needs a device, `reparameterize` is not a sampler."""

    def sample(self, num_samples: int, current_device: int, **kwargs: Any) -> torch.Tensor:
        return torch.zeros(num_samples, 2)

    def reparameterize(self, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        return mu

    def generate(self, num_samples: int, *, generator: Any = None) -> torch.Tensor:
        return torch.randn(num_samples, 2, generator=generator)


class Conditional:
    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        return torch.zeros(num_samples, 2) + (0 if conditions is None else conditions[:, None])


def draw(module: Any, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
    return module.generate(num_samples, generator=generator)


def test_a_method_with_other_required_arguments_is_refused_with_the_expected_signature() -> None:
    with pytest.raises(
        SamplerError,
        match=r"ZooVAE.sample\(num_samples: 'int', current_device: 'int', \*\*kwargs: 'Any'\).* cannot be called as"
        r" sample\(num_samples, generator=...\): missing a required argument: 'current_device'.*sampler='generate'",
    ):
        bind_sampler(ZooVAE())
    with pytest.raises(SamplerError, match=r"reparameterize.*missing a required argument: 'log_var'"):
        bind_sampler(ZooVAE(), "reparameterize")


def test_another_method_or_a_function_can_be_named() -> None:
    sampler = bind_sampler(ZooVAE(), "generate")
    assert sampler.name == "ZooVAE.generate" and sampler.takes_generator and not sampler.takes_conditions
    first = sampler(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, sampler(3, generator=torch.Generator().manual_seed(0)))
    by_path = bind_sampler(ZooVAE(), "tests.test_sampler:draw")
    assert by_path.name == "tests.test_sampler:draw" and by_path(2).shape == (2, 2)
    assert bind_sampler(ZooVAE(), draw).name == "callable:tests.test_sampler:draw"
    assert describe_sampler(draw) == "callable:tests.test_sampler:draw" and describe_sampler("generate") == "generate"
    with pytest.raises(SamplerError, match=r"ZooVAE has no method `decode`"):
        bind_sampler(ZooVAE(), "decode")
    with pytest.raises(SamplerError, match=r"'tests.test_sampler:nothing' does not name an importable object"):
        bind_sampler(ZooVAE(), "tests.test_sampler:nothing")


def test_conditions_are_passed_only_to_a_conditional_loop_and_must_be_accepted() -> None:
    sampler = bind_sampler(Conditional(), condition_field="label")
    assert sampler.takes_conditions
    assert sampler(2, conditions=torch.tensor([1.0, 2.0]))[:, 0].tolist() == [1.0, 2.0]
    assert bind_sampler(Conditional()).takes_conditions  # it accepts them: the audit asks for a condition field
    with pytest.raises(SamplerError, match=r"`condition_field` is 'label', so the loop passes `conditions=` to"):
        bind_sampler(ZooVAE(), "generate", condition_field="label")


def test_sampling_settings_are_checked_and_passed() -> None:
    class Tempered:
        def sample(self, num_samples: int, *, generator: Any = None, temperature: float = 1.0) -> torch.Tensor:
            return torch.full((num_samples, 1), temperature)

    assert bind_sampler(Tempered(), extra={"temperature": 0.5})(2).tolist() == [[0.5], [0.5]]
    with pytest.raises(SamplerError, match=r"got an unexpected keyword argument 'guidance'"):
        bind_sampler(Tempered(), extra={"guidance": 2.0})
