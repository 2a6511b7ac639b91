"""The force-field corrector: MMFF relaxation of generated conformers, blended by γ as the physics
corrector blends, the same with any number of workers, and refused for items it cannot read."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import fit

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import ForceFieldCorrector, make_corrector
from sclc_lightning.datasets.molecules import ConformerDataModule, embed_conformer
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.metrics.conformers import best_rmsd, sane_bond_share

SIZE = 24


@pytest.fixture(scope="module")
def noisy() -> tuple[list, torch.Tensor, torch.Tensor]:  # type: ignore[type-arg]
    """Three molecules' MMFF conformers with 0.15 Å of noise on every atom (bonds no longer sane)."""
    molecules = [embed_conformer(s, seed=0, mmff_steps=2000) for s in ("CCO", "c1ccccc1O", "CC(=O)Nc1ccccc1")]
    generator = torch.Generator().manual_seed(0)
    pos = torch.zeros(len(molecules), SIZE, 3)
    for k, m in enumerate(molecules):
        pos[k, : m.num_atoms] = m.conformers[0] + 0.15 * torch.randn(m.num_atoms, 3, generator=generator)
    return molecules, torch.stack([m.graph(SIZE) for m in molecules]), pos


def correct(corrector: ForceFieldCorrector, graphs: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    batch = SyntheticBatch(pos, torch.arange(len(pos)), graphs)
    out = corrector.correct(batch, generation=1, generator=torch.Generator(), reference=None)  # type: ignore[arg-type]
    assert isinstance(out, torch.Tensor)
    return out


def test_relaxation_brings_noisy_conformers_back_to_the_minimum(noisy) -> None:  # type: ignore[no-untyped-def]
    molecules, graphs, pos = noisy
    corrector = make_corrector("forcefield", {"steps": 500, "num_workers": 0})
    assert isinstance(corrector, ForceFieldCorrector) and corrector.strength == math.inf
    out = correct(corrector, graphs, pos)
    assert out.dtype == pos.dtype and bool((out[:, 20:] == 0).all())  # padding rows stay zero
    for k, m in enumerate(molecules):
        n = m.num_atoms
        assert sane_bond_share(m, pos[k : k + 1, :n]) == 0.0 and sane_bond_share(m, out[k : k + 1, :n]) == 1.0
        assert best_rmsd(m, out[k, :n], m.conformers[0]) < 0.5 * best_rmsd(m, pos[k, :n], m.conformers[0])
    report = corrector.take_report()
    assert 0.1 < report["forcefield_shift"] < 0.5 and report["forcefield_unrelaxed"] == 0


def test_strength_blends_like_the_physics_corrector_and_workers_do_not_change_the_result(noisy) -> None:  # type: ignore[no-untyped-def]
    _, graphs, pos = noisy
    graphs, pos = graphs.repeat(4, 1, 1), pos.repeat(4, 1, 1)
    relaxed = ForceFieldCorrector(steps=50, num_workers=0).relax(graphs, pos)
    parallel = ForceFieldCorrector(steps=50, num_workers=2, chunk_size=5, start_method="fork").relax(graphs, pos)
    assert torch.equal(relaxed, parallel)  # each conformer on its own: workers and chunks do not matter
    assert torch.equal(correct(ForceFieldCorrector(0.0, steps=50, num_workers=0), graphs, pos), pos)
    half = correct(ForceFieldCorrector(1.0, steps=50, num_workers=0), graphs, pos)
    assert torch.allclose(half, (pos + relaxed.float()) / 2, atol=1e-6)  # (y + γ relax(y)) / (1 + γ), γ = 1
    assert ForceFieldCorrector(3.0, steps=50).describe() == {"name": "forcefield", "strength": 3.0, "steps": 50}
    with pytest.raises(ValueError, match="`steps` must be an integer >= 1, got 0"):
        ForceFieldCorrector(steps=0)


def test_items_without_a_graph_condition_are_refused_before_generation_0(tmp_path: Path) -> None:
    from sclc_lightning.models import ConformerDiffusion

    data = ConformerDataModule(num_molecules=3, train_conformers=1, test_conformers=0, max_heavy_atoms=8)
    loop = SelfConsumingLoop(
        1.0, 1, data_field="pos", condition_field="mol", corrector="forcefield", output_dir=tmp_path / "s"
    )
    with pytest.raises(
        ValueError, match=r"'forcefield' needs conformers .* the condition 'mol' is torch.int64 of shape \(\)"
    ):
        fit(tmp_path, ConformerDiffusion(width=8, layers=1), data, loop)
    assert not (tmp_path / "s").exists()


class _EditedGraphs(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """ConformerDataModule's items with one item's graph matrix replaced."""

    def __init__(self, items: list[dict[str, torch.Tensor]], index: int, graph: torch.Tensor) -> None:
        self.items = [dict(item) for item in items]
        self.items[index]["graph"] = graph

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


@pytest.mark.parametrize("problem", ["bond code 7", "charge lost"])
def test_every_molecule_of_the_real_items_is_checked_before_generation_0(tmp_path: Path, problem: str) -> None:
    from sclc_lightning.models import ConformerDiffusion

    data = ConformerDataModule(num_molecules=3, train_conformers=1, test_conformers=0, max_heavy_atoms=8)
    data.setup("fit")
    items = [data.item(m, 0) for m in range(3)]
    graph = items[2]["graph"].clone()  # the last molecule, not the first
    if problem == "bond code 7":
        graph[0, 1] = graph[1, 0] = 7
        match = r"item 2 is not a molecule RDKit accepts \(Unknown bond codes \[7\]"
    else:  # methylammonium written without its charge: N with four bonds
        methyl = embed_conformer("CN", seed=0).graph(graph.shape[0])
        nitrogen = 1
        hydrogen = int((methyl.diagonal() == 1).nonzero()[-1]) + 1  # a spare row becomes an extra H on N
        methyl[hydrogen, hydrogen] = 1
        methyl[nitrogen, hydrogen] = methyl[hydrogen, nitrogen] = 1
        graph = methyl
        match = r"item 2 is not a molecule RDKit accepts .* a charged molecule cannot be an item"
    edited = _EditedGraphs(items, 2, graph)
    loop = SelfConsumingLoop(
        1.0, 1, data_field="pos", condition_field="graph", corrector="forcefield", output_dir=tmp_path / "s", seed=0
    )
    loader = torch.utils.data.DataLoader(edited, batch_size=3)
    with pytest.raises(ValueError, match=match):
        fit(tmp_path, ConformerDiffusion(width=8, layers=1), loader, loop)
    assert loop.history == []  # refused before generation 0 trained
