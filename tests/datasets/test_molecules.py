"""Molecules offline (RDKit's shipped NCI set, ETKDG + MMFF), GEOM's MessagePack files, and the
conformer metrics on hand-checked cases: the RMSD of a conformer with itself and with a rotated
copy is 0; COV-R and MAT-R on a known set."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import msgpack
import pytest
import torch
from helpers import fit
from rdkit import Chem

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.chemistry import graph_matrix, graph_parts, rdkit_molecule
from sclc_lightning.datasets.molecules import (
    ConformerDataModule,
    Molecule,
    embed_conformer,
    read_geom,
    shipped_smiles,
)
from sclc_lightning.metrics.conformers import best_rmsd, coverage_matching, rmsd_matrix
from sclc_lightning.store import SyntheticStore


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_a_few_hundred_drug_like_molecules_ship_with_rdkit() -> None:
    smiles = shipped_smiles(limit=300)
    assert len(smiles) == 300 and len(set(smiles)) == 300
    molecule = embed_conformer(smiles[0], seed=0)
    again = embed_conformer(smiles[0], seed=0)
    assert torch.equal(molecule.conformers, again.conformers)  # the seed decides the conformer
    assert molecule.conformers.shape == (1, molecule.num_atoms, 3) and molecule.bonds.shape[1] == 2


def test_rmsd_is_zero_with_itself_and_a_rotated_copy_and_not_with_another_conformer() -> None:
    mol = embed_conformer("CC(=O)Nc1ccc(O)cc1", seed=0)  # paracetamol
    conformer = mol.conformers[0]
    moved = conformer @ _rotation(1.1).T + torch.tensor([3.0, -2.0, 5.0])
    assert best_rmsd(mol, conformer, conformer) == pytest.approx(0.0, abs=1e-6)
    assert best_rmsd(mol, moved, conformer) == pytest.approx(0.0, abs=1e-4)
    stretched = conformer * 1.2  # every distance 20% longer: no rotation can undo it
    assert best_rmsd(mol, stretched, conformer) > 0.1


def test_coverage_and_matching_on_a_known_set() -> None:
    mol = embed_conformer("CCCCCCO", seed=0)
    near = mol.conformers[0]
    far = (near - near.mean(0)) * 2.0  # a conformer the threshold does not cover
    reference = torch.stack([near, far])
    generated = torch.stack([near @ _rotation(0.4).T, near + 1.0])  # two copies of `near`, moved rigidly
    distances = rmsd_matrix(mol, generated, reference)
    d_far = float(distances[:, 1].min())
    assert distances[:, 0].max() < 1e-4 and d_far > 1.25
    cov, mat = coverage_matching(mol, generated, reference)
    assert cov == 0.5 and mat == pytest.approx(d_far / 2, rel=1e-6)  # near covered at 0 Å, far not
    assert coverage_matching(mol, generated, reference, threshold=d_far + 0.01)[0] == 1.0


def test_geom_messagepack_files_are_read_without_pickles(tmp_path: Path) -> None:
    a, b = embed_conformer("CCO", seed=1), embed_conformer("CCO", seed=2)
    c = embed_conformer("c1ccccc1O", seed=0)

    def record(*molecules) -> dict:  # type: ignore[no-untyped-def]
        conformers = []
        for m in molecules:
            xyz = torch.cat([m.atomic_numbers[:, None].double(), m.conformers[0].double()], dim=1)
            conformers.append({"xyz": xyz.tolist(), "totalenergy": -1.0, "boltzmannweight": 0.5})
        return {"conformers": conformers, "charge": 0}

    path = tmp_path / "drugs_crude.msgpack"
    with open(path, "wb") as handle:
        handle.write(msgpack.packb({"CCO": record(a, b)}))
        handle.write(msgpack.packb({"c1ccccc1O": record(c)}))
    molecules = list(read_geom(path))
    assert [m.smiles for m in molecules] == ["CCO", "c1ccccc1O"]
    assert torch.allclose(molecules[0].conformers, torch.stack([a.conformers[0], b.conformers[0]]), atol=1e-6)
    assert len(list(read_geom(path, limit=1))) == 1
    assert list(read_geom(path, limit=0)) == []
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(msgpack.packb({"CCO": {"conformers": [{"xyz": [[6, 0.0, 0.0, 0.0]]}]}}))
    with pytest.raises(ValueError, match=f"{bad}: conformer 0 of 'CCO' has shape \\(1, 4\\); its graph has 9 atoms"):
        list(read_geom(bad))


def _geom_file(path: Path, smiles: str, xyz: list[list[float]]) -> Path:
    path.write_bytes(msgpack.packb({smiles: {"conformers": [{"xyz": xyz}]}}))
    return path


def _ethanol_xyz() -> list[list[float]]:
    m = embed_conformer("CCO", seed=1)
    return torch.cat([m.atomic_numbers[:, None].double(), m.conformers[0].double()], dim=1).tolist()


def test_a_truncated_geom_stream_is_refused_naming_the_file(tmp_path: Path) -> None:
    whole = msgpack.packb({"CCO": {"conformers": [{"xyz": _ethanol_xyz()}]}})
    path = tmp_path / "cut.msgpack"
    path.write_bytes(whole + whole[:-25])  # the second record loses its last 25 bytes
    with pytest.raises(
        ValueError, match=f"{path}: the MessagePack stream's last whole record ends at byte {len(whole)} of"
    ):
        list(read_geom(path))
    path.write_bytes(whole + b"\xc1")  # a byte MessagePack never uses
    with pytest.raises(ValueError, match=f"{path}: "):
        list(read_geom(path))
    path.write_bytes(b"")  # a download cut to nothing is not an empty data set
    with pytest.raises(ValueError, match=f"{path}: the file is empty"):
        list(read_geom(path))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("nan", "holds non-finite values"),
        ("huge", "has a coordinate of 1e\\+300 Å"),
        ("fraction", "atomic numbers that are not whole numbers"),
    ],
)
def test_geom_records_with_impossible_values_are_refused(tmp_path: Path, change: str, match: str) -> None:
    xyz = _ethanol_xyz()
    if change == "nan":
        xyz[2][1] = float("nan")
    elif change == "huge":
        xyz[0][3] = 1e300
    else:
        xyz[0][0] = 6.4
    path = _geom_file(tmp_path / "x.msgpack", "CCO", xyz)
    with pytest.raises(ValueError, match=f"{path}: conformer 0 of 'CCO' .*{match}"):
        list(read_geom(path))


def test_charged_molecules_are_refused_naming_the_smiles(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'C\[NH3\+\]' has formal charges on N1 \(\+1\): a graph matrix"):
        embed_conformer("C[NH3+]", seed=0)
    path = _geom_file(tmp_path / "ion.msgpack", "C[NH3+]", [[6, 0.0, 0.0, 0.0]] * 8)
    with pytest.raises(ValueError, match=f"{path}: 'C\\[NH3\\+\\]' has formal charges"):
        list(read_geom(path))


class JitterConformers(pl.LightningModule):
    """A stand-in generator: the molecule's first training conformer plus noise on its atoms."""

    def __init__(self, data: ConformerDataModule) -> None:
        super().__init__()
        self.data = data
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return (self.weight * batch["pos"][batch["mask"]].sum()) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        index = {m.graph(self.data.max_atoms).numpy().tobytes(): i for i, m in enumerate(self.data.molecules)}
        items = [self.data.item(index[graph.numpy().tobytes()], 0) for graph in conditions]
        pos = torch.stack([i["pos"] for i in items])
        mask = torch.stack([i["mask"] for i in items])[..., None]
        return pos + 0.1 * torch.randn(pos.shape, generator=generator) * mask


def test_padded_molecule_items_go_through_the_loop(tmp_path: Path) -> None:
    data = ConformerDataModule(num_molecules=6, train_conformers=2, test_conformers=1, batch_size=4)
    data.setup("fit")
    first = data.item(0, 0)
    assert first["pos"].shape == (data.max_atoms, 3) and int(first["mask"].sum()) == data.molecules[0].num_atoms
    assert bool((first["pos"][~first["mask"]] == 0).all()) and bool((first["atoms"][~first["mask"]] == 0).all())
    assert torch.equal(first["graph"].diagonal(), first["atoms"])  # atoms on the diagonal, bonds elsewhere
    assert Molecule.from_graph(first["graph"]).smiles == Chem.CanonSmiles(data.molecules[0].smiles)
    loop = SelfConsumingLoop(
        1.0,
        1,
        images_per_generation=None,
        mode="replace",
        data_field="pos",
        condition_field="graph",
        output_dir=tmp_path / "s",
    )
    fit(tmp_path, JitterConformers(data), data, loop)
    store = SyntheticStore(tmp_path / "s")
    (record,) = store.records().values()
    synthetic = store.open_generation(record, loop.real_data.codec, len(loop.real_data))
    assert len(synthetic) == 12  # λ = 1: one conformer per real item
    for index in range(len(synthetic)):
        item = synthetic[index]
        source = data.molecules[int(item["mol"])]
        assert torch.equal(item["atoms"][item["mask"]], source.atomic_numbers)  # the graph follows its molecule
        assert torch.equal(item["graph"], source.graph(data.max_atoms))
        assert bool((item["pos"][~item["mask"]] == 0).all())
        assert best_rmsd(source, item["pos"][item["mask"]], source.conformers[0]) < 0.5


def test_graph_matrices_rebuild_every_shipped_molecule_in_its_atom_order() -> None:
    """The condition carries the whole molecule: RDKit rebuilds the same molecule from the matrix
    alone, atoms in the same order (so conformers still fit), for all 300 shipped molecules."""
    for smiles in shipped_smiles(300):
        molecule = embed_conformer(smiles, seed=0)
        atoms, bonds, orders = graph_parts(
            graph_matrix(molecule.atomic_numbers, molecule.bonds, molecule.bond_orders, 64)
        )
        assert torch.equal(atoms, molecule.atomic_numbers)
        rebuilt = rdkit_molecule(atoms, bonds, orders, molecule.conformers)
        assert Chem.MolToSmiles(Chem.RemoveHs(rebuilt)) == Chem.CanonSmiles(smiles)
        assert rebuilt.GetConformer().GetPositions().tolist() == molecule.conformers[0].double().tolist()
    with pytest.raises(ValueError, match="does not fit a graph matrix of 2"):
        graph_matrix(torch.tensor([6, 6, 8]), torch.tensor([[0, 1]]), torch.tensor([1.0]), 2)
    with pytest.raises(ValueError, match="list its atoms first"):
        graph_parts(torch.tensor([[0, 0], [0, 6]]))
    with pytest.raises(ValueError, match="cannot sanitise"):  # a carbon with five bonds
        rdkit_molecule(torch.tensor([6, 1, 1, 1, 1, 1]), torch.tensor([[0, k] for k in range(1, 6)]), torch.ones(5))
