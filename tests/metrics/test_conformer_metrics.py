"""ConformerMetrics on hand-checked generators: one that returns the held-out conformers themselves
(COV-R 1, MAT-R 0, every bond sane) and one that returns them stretched by 1.5 (no bond sane; each
reference's closest conformer is its own stretched copy, at a known RMSD)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import fit

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import ConformerMetrics
from sclc_lightning.datasets.molecules import ConformerDataModule
from sclc_lightning.metrics.conformers import best_rmsd


class HeldOutOracle(pl.LightningModule):
    """Returns, for each graph asked, the molecule's held-out conformers in turn, times ``stretch``."""

    def __init__(self, data: ConformerDataModule, stretch: float) -> None:
        super().__init__()
        self.data, self.stretch = data, stretch
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.asked: dict[bytes, int] = {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return (self.weight * batch["pos"].sum()) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        index = {m.graph(self.data.max_atoms).numpy().tobytes(): i for i, m in enumerate(self.data.molecules)}
        out = []
        for graph in conditions:
            key = graph.numpy().tobytes()
            turn = self.asked.get(key, 0)
            self.asked[key] = turn + 1
            molecule = index[key]
            held_out = self.data.train_conformers + turn % self.data.test_conformers
            out.append(self.data.item(molecule, held_out)["pos"] * self.stretch)
        return torch.stack(out)


@pytest.fixture(scope="module")
def data() -> ConformerDataModule:
    data = ConformerDataModule(num_molecules=4, train_conformers=1, test_conformers=2, max_heavy_atoms=8, batch_size=4)
    data.setup("fit")
    return data


def _evaluate(tmp_path: Path, data: ConformerDataModule, stretch: float, threshold: float) -> dict[str, float]:
    loop = SelfConsumingLoop(
        1.0, 1, data_field="pos", condition_field="graph", mode="replace", output_dir=tmp_path / f"s{stretch}"
    )
    metrics = ConformerMetrics(ratio=2, threshold=threshold, batch_size=3)
    trainer = fit(tmp_path, HeldOutOracle(data, stretch), data, loop, callbacks=[metrics])
    assert metrics.num_samples == 2 * 4 * 2  # twice the held-out conformers
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_the_held_out_conformers_themselves_cover_and_match_exactly(tmp_path: Path, data: ConformerDataModule) -> None:
    logged = _evaluate(tmp_path, data, 1.0, 1.25)
    assert logged["cov_r"] == 1.0 and logged["mat_r"] < 1e-3 and logged["sane_bond_share"] == 1.0


def test_stretched_conformers_have_no_sane_bond_and_a_known_matching(tmp_path: Path, data: ConformerDataModule) -> None:
    # each held-out conformer's closest generated one is (at best) its own copy stretched by 1.5
    expected = []
    for molecule in data.molecules:
        n = molecule.num_atoms
        for k in range(data.test_conformers):
            reference = molecule.conformers[data.train_conformers + k]
            candidates = [1.5 * c for c in molecule.conformers[data.train_conformers :]]
            expected.append(min(best_rmsd(molecule, c[:n], reference[:n]) for c in candidates))
    per_molecule = torch.tensor(expected).reshape(len(data.molecules), data.test_conformers).mean(1)
    threshold = float(per_molecule.median())
    logged = _evaluate(tmp_path, data, 1.5, threshold)
    assert logged["sane_bond_share"] == 0.0
    assert abs(logged["mat_r"] - float(per_molecule.mean())) < 1e-4
    covered = torch.tensor(expected).reshape(len(data.molecules), -1) <= threshold
    assert abs(logged["cov_r"] - float(covered.double().mean(1).mean())) < 1e-9
    assert 0 < logged["cov_r"] < 1


def test_items_that_are_not_conformers_with_graphs_are_refused_before_generation_0(
    tmp_path: Path, data: ConformerDataModule
) -> None:
    loop = SelfConsumingLoop(1.0, 1, data_field="pos", condition_field="mol", output_dir=tmp_path / "s")
    model = HeldOutOracle(data, 1.0)
    model.sample = lambda n, **_: torch.zeros(n, data.max_atoms, 3)  # type: ignore[method-assign]
    trained: list[int] = []
    model.on_train_epoch_start = lambda: trained.append(1)  # type: ignore[method-assign]
    with pytest.raises(ValueError, match=r"ConformerMetrics needs conformers \(atoms, 3\) .* give \(\d+, 3\) and \(\)"):
        fit(tmp_path, model, data, loop, callbacks=[ConformerMetrics()])
    assert trained == []
