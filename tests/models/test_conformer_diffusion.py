"""The conformer diffusion model: E(3)-equivariant noise prediction, zero centre of mass, padding
left alone, sampling that follows the loop's generator, and a held-out loss with fixed draws."""

from __future__ import annotations

import math

import pytest
import torch

from sclc_lightning.datasets.molecules import embed_conformer
from sclc_lightning.models import ConformerDiffusion
from sclc_lightning.models.conformer_diffusion import centred


def _batch(size: int = 24) -> dict[str, torch.Tensor]:
    molecules = [embed_conformer(s, seed=0) for s in ("CCO", "c1ccccc1O", "CC(=O)N")]
    pos = torch.zeros(len(molecules), size, 3)
    for k, m in enumerate(molecules):
        pos[k, : m.num_atoms] = m.conformers[0]
    graph = torch.stack([m.graph(size) for m in molecules])
    return {"pos": pos, "graph": graph}


def _rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    return q  # orthogonal: a rotation or a reflection


def test_the_network_is_equivariant_and_its_output_centred_on_the_atoms() -> None:
    torch.manual_seed(0)
    model = ConformerDiffusion(width=16, layers=2).double()
    batch = _batch()
    graph = batch["graph"]
    mask = graph.diagonal(dim1=1, dim2=2) > 0
    x = centred(batch["pos"].double() / 2 + 0.3 * torch.randn(batch["pos"].shape, dtype=torch.float64), mask)
    t = torch.tensor([10, 500, 900])
    torch.set_grad_enabled(False)
    out = model.net(x, t, graph, mask)
    assert bool((out[~mask] == 0).all())  # padding rows untouched
    assert torch.allclose((out * mask[..., None]).sum(1), torch.zeros(3, 3, dtype=torch.float64), atol=1e-12)
    assert float(out.abs().max()) > 1e-3  # not trivially zero
    rotation = _rotation(1).double()
    reflection = rotation * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # the other determinant
    assert torch.linalg.det(rotation) * torch.linalg.det(reflection) < 0
    for turn in (rotation, reflection):
        assert torch.allclose(model.net(x @ turn.T, t, graph, mask), out @ turn.T, atol=1e-10)
    shifted = model.net(x + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) * mask[..., None], t, graph, mask)
    assert torch.allclose(shifted, out, atol=1e-10)
    other = graph.clone()
    other[0, 0, 1] = other[0, 1, 0] = 2  # another bond: another prediction
    assert not torch.allclose(model.net(x, t, other, mask)[0], out[0])
    torch.set_grad_enabled(True)


def test_sampling_follows_the_generator_and_the_conditions() -> None:
    torch.manual_seed(0)
    model = ConformerDiffusion(width=16, layers=2, sampling_steps=4)
    graph = _batch()["graph"]
    mask = graph.diagonal(dim1=1, dim2=2) > 0
    a = model.sample(3, generator=torch.Generator().manual_seed(5), conditions=graph)
    b = model.sample(3, generator=torch.Generator().manual_seed(5), conditions=graph)
    c = model.sample(3, generator=torch.Generator().manual_seed(6), conditions=graph)
    assert a.shape == (3, 24, 3) and torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a[~mask] == 0).all()) and torch.allclose((a * mask[..., None]).sum(1), torch.zeros(3, 3), atol=1e-4)
    assert model.net.training  # sampling switches to eval and back
    with pytest.raises(ValueError, match="needs `conditions`"):
        model.sample(3, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"must be 2 graph matrices \(n, atoms, atoms\), got shape \(3, 24, 24\)"):
        model.sample(2, conditions=graph)


def test_the_held_out_loss_uses_the_same_draws_and_training_lowers_it() -> None:
    torch.manual_seed(0)
    model = ConformerDiffusion(width=32, layers=2, lr=3e-3, eval_draws=8)
    batch = _batch()
    before = model.score_items(batch, 0)["loss"]
    assert before.shape == (3,) and torch.equal(before, model.score_items(batch, 0)["loss"])
    assert not torch.equal(before, model.score_items(batch, 1)["loss"])
    assert math.isclose(float(before.mean()), 1.0, rel_tol=0.5)  # an untrained net: about the noise's variance
    optimizer = model.configure_optimizers()
    for _ in range(150):
        optimizer.zero_grad()
        model._loss(batch).mean().backward()
        optimizer.step()
    assert float(model.score_items(batch, 0)["loss"].mean()) < 0.7 * float(before.mean())


def test_the_ema_weights_average_the_steps_and_sample_and_score() -> None:
    """With ``ema_decay`` the EMA copies the weights at the first step, then moves by (1 − decay)
    of the gap at each step; sampling and the held-out loss use it, training the trained net."""
    torch.manual_seed(0)
    model = ConformerDiffusion(width=16, layers=2, sampling_steps=3, ema_decay=0.9)
    assert model.ema is not None and model.sampling_net() is model.net  # before any step: the trained net
    batch = _batch()
    optimizer = model.configure_optimizers()
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {
        id(p) for p in model.net.parameters()
    }  # the EMA copy is not trained
    averaged = None
    for step in range(3):
        optimizer.zero_grad()
        model._loss(batch).mean().backward()
        optimizer.step()
        current = [p.detach().clone() for p in model.net.parameters()]
        averaged = current if averaged is None else [a + 0.1 * (c - a) for a, c in zip(averaged, current)]
        model.on_train_batch_end(None, batch, step)
    assert model.sampling_net() is model.ema.module and int(model.ema.n_averaged) == 3
    for mine, expected in zip(model.ema.module.parameters(), averaged):
        assert torch.allclose(mine, expected, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(model.ema.module.parameters(), model.net.parameters()))
    graph = batch["graph"]
    drawn = model.sample(3, generator=torch.Generator().manual_seed(1), conditions=graph)
    saved, model.ema = model.ema, None  # the same draws with the trained weights differ
    assert not torch.equal(drawn, model.sample(3, generator=torch.Generator().manual_seed(1), conditions=graph))
    trained_loss = model.score_items(batch, 0)["loss"]
    model.ema = saved
    assert not torch.equal(trained_loss, model.score_items(batch, 0)["loss"])
    assert "ema.n_averaged" in model.state_dict()  # checkpointed (the kill -9 test resumes it bit for bit)
    with pytest.raises(ValueError, match="ema_decay"):
        ConformerDiffusion(ema_decay=1.5)


def test_sampling_keeps_the_predicted_conformer_within_the_clip_radius() -> None:
    """An untrained network sampled in 200 steps can diverge (to NaN for the small recipe's width);
    with the default 20 Å every atom of every step's clean prediction stays within it, so
    the samples are finite and within 20 Å of the centre. The clip is radial, so it turns with
    the molecule, and it leaves a prediction already inside the radius unchanged."""
    graph = _batch()["graph"]
    mask = graph.diagonal(dim1=1, dim2=2) > 0
    torch.manual_seed(0)
    model = ConformerDiffusion(width=16, layers=2, sampling_steps=200)
    drawn = model.sample(3, generator=torch.Generator().manual_seed(0), conditions=graph)
    assert bool(torch.isfinite(drawn).all()) and float(drawn.norm(dim=-1).max()) <= 20.0 + 1e-3
    x = centred(torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(2)), mask)
    small = 0.01 * centred(torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(3)), mask)
    assert torch.allclose(model._clipped(x, small, 10), small, atol=1e-5)  # clean ≈ x: inside the radius
    big = 1e3 * small
    rotation = _rotation(4)
    turned = model._clipped(x @ rotation.T, big @ rotation.T, 999)
    assert torch.allclose(turned, model._clipped(x, big, 999) @ rotation.T, atol=1e-3)
    assert not torch.allclose(model._clipped(x, big, 999), big)
    with pytest.raises(ValueError, match="clip_radius"):
        ConformerDiffusion(clip_radius=0.0)
    huge = ConformerDiffusion(width=16, layers=2, sampling_steps=2, clip_radius=1e39)  # past float32: no clip
    assert torch.allclose(huge._clipped(x, big, 999), big, atol=1e-3)


@pytest.mark.parametrize(
    "model",
    [
        "conformer_diffusion.ConformerDiffusion",
        "motion_diffusion.MotionDiffusion",
        "image_ddpm.ImageDDPM",
        "image_edm.ImageEDM",
    ],
)
def test_an_ema_decay_of_one_is_refused(model: str) -> None:
    """At decay 1 the average would keep the first step's weights and every sample come from them."""
    import importlib

    module, name = model.split(".")
    cls = getattr(importlib.import_module(f"sclc_lightning.models.{module}"), name)
    with pytest.raises(ValueError, match="`ema_decay` must be below 1"):
        cls(ema_decay=1.0)
