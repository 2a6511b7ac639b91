r"""Small drug-like molecules and their conformers, offline (the conformer-diffusion setting of
Gerstgrasser et al. 2024, GeoDiff on GEOM-Drugs).

- :func:`shipped_smiles`: a few hundred small molecules from the NCI set that RDKit ships
  (``rdkit/Data/NCI/first_5K.smi``), filtered to drug-like sizes and elements; nothing is
  downloaded.
- :func:`embed_conformer`: one conformer of a SMILES, embedded with ETKDG and relaxed with MMFF
  (RDKit), from a seed.
- :func:`read_geom`: the conformers of a GEOM MessagePack file (``drugs_crude.msgpack``) for users
  who have it; MessagePack only, never a pickle.

A molecule is a :class:`Molecule`: atomic numbers, bonds (pairs of atom indices and their bond
orders) and one or more conformers (``(atoms, 3)`` coordinates in Å). RDKit is the ``chem`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from sclc_lightning._checks import COUNT, NON_NEGATIVE, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning.chemistry import _MOLECULES, _chem, graph_matrix, graph_parts, rdkit_molecule
from sclc_lightning.seeding import datamodule_seed

__all__ = ["ELEMENTS", "ConformerDataModule", "Molecule", "embed_conformer", "read_geom", "shipped_smiles"]

#: The elements kept by :func:`shipped_smiles` (hydrogen is added to every molecule).
ELEMENTS = ("H", "C", "N", "O", "F", "S", "Cl")


@dataclass
class Molecule:
    """A molecular graph with conformers.

    Attributes:
        smiles: its SMILES (with the hydrogens made explicit in the graph).
        atomic_numbers: shape ``(atoms,)``, int64.
        bonds: shape ``(bonds, 2)``, int64 atom indices.
        bond_orders: shape ``(bonds,)``, float32 (1, 1.5, 2, 3).
        conformers: shape ``(conformers, atoms, 3)``, float32, in Å.
        graph_order: built from a graph matrix (:meth:`from_graph`): RDKit molecules are rebuilt
            from the graph, in its atom order, rather than from the SMILES.
    """

    smiles: str
    atomic_numbers: Tensor
    bonds: Tensor
    bond_orders: Tensor
    conformers: Tensor = field(default_factory=lambda: torch.empty(0, 0, 3))
    graph_order: bool = False

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.numel())

    @classmethod
    def from_graph(cls, matrix: Tensor, conformers: Tensor | None = None) -> Molecule:
        """The molecule of a graph matrix (:func:`~sclc_lightning.chemistry.graph_matrix`), with
        ``conformers`` (``(num, atoms or more, 3)``: the padding rows are dropped); its SMILES is
        RDKit's canonical one.

        Examples:
            >>> mol = embed_conformer("CCO", seed=0)
            >>> Molecule.from_graph(mol.graph(12)).smiles
            'CCO'
        """
        atoms, bonds, orders = graph_parts(matrix)
        rdkit = rdkit_molecule(atoms, bonds, orders)
        chem = _chem()
        kept = torch.empty(0, atoms.numel(), 3) if conformers is None else conformers[:, : atoms.numel()].float()
        return cls(chem.MolToSmiles(chem.RemoveHs(rdkit)), atoms, bonds, orders, kept, graph_order=True)

    def graph(self, size: int | None = None) -> Tensor:
        """The molecule's graph matrix, padded to ``size`` atoms (default: its own)."""
        return graph_matrix(self.atomic_numbers, self.bonds, self.bond_orders, size or self.num_atoms)

    def to_rdkit(self, conformer: int | None = None) -> Any:
        """An RDKit molecule with explicit hydrogens, with one conformer (or all, ``None``)."""
        Point3D = require("rdkit.Geometry", "chem", _MOLECULES).Point3D
        chem = _chem()
        chosen = range(len(self.conformers)) if conformer is None else [conformer]
        if self.graph_order:  # atoms in the graph's order (a SMILES would order them its own way)
            return rdkit_molecule(self.atomic_numbers, self.bonds, self.bond_orders, self.conformers[list(chosen)])
        mol = chem.AddHs(chem.MolFromSmiles(self.smiles))
        if mol.GetNumAtoms() != self.num_atoms:
            raise ValueError(
                f"{self.smiles}: RDKit builds {mol.GetNumAtoms()} atoms, the molecule has {self.num_atoms}."
            )
        for index in chosen:
            rd_conformer = chem.Conformer(self.num_atoms)
            for atom, (x, y, z) in enumerate(self.conformers[index].double().tolist()):
                rd_conformer.SetAtomPosition(atom, Point3D(x, y, z))
            mol.AddConformer(rd_conformer, assignId=True)
        return mol


def shipped_smiles(limit: int = 300, min_heavy_atoms: int = 6, max_heavy_atoms: int = 20) -> list[str]:
    """Up to ``limit`` small drug-like molecules from the NCI set RDKit ships, in file order:
    neutral, one fragment, only the :data:`ELEMENTS`, between ``min_heavy_atoms`` and
    ``max_heavy_atoms`` heavy atoms, canonical SMILES, no duplicates.

    Examples:
        >>> smiles = shipped_smiles(limit=5)
        >>> len(smiles), all(isinstance(s, str) for s in smiles)
        (5, True)
    """
    RDConfig = require("rdkit.RDConfig", "chem", _MOLECULES)
    rdlogger: Any = require("rdkit.RDLogger", "chem", _MOLECULES)
    chem = _chem()
    rdlogger.DisableLog("rdApp.*")  # the file has molecules RDKit refuses: they are skipped
    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    kept: list[str] = []
    seen: set[str] = set()
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            mol = chem.MolFromSmiles(parts[0]) if parts else None
            if mol is None or not min_heavy_atoms <= mol.GetNumHeavyAtoms() <= max_heavy_atoms:
                continue
            if len(chem.GetMolFrags(mol)) != 1 or any(a.GetFormalCharge() for a in mol.GetAtoms()):
                continue
            if any(a.GetSymbol() not in ELEMENTS for a in mol.GetAtoms()):
                continue
            canonical = chem.MolToSmiles(mol)
            if canonical not in seen:
                seen.add(canonical)
                kept.append(canonical)
            if len(kept) >= limit:
                break
    finally:
        rdlogger.EnableLog("rdApp.*")
    return kept


def _graph(mol: Any, smiles: str, where: str = "") -> Molecule:
    """The molecule's graph; a charged atom is refused, naming the SMILES: a graph matrix has no
    place for formal charges, so the molecule would lose them silently (radicals need none: with
    every hydrogen explicit, RDKit finds them again from the valences)."""
    charged = [
        f"{atom.GetSymbol()}{atom.GetIdx()} ({atom.GetFormalCharge():+d})"
        for atom in mol.GetAtoms()
        if atom.GetFormalCharge() != 0
    ]
    if charged:
        raise ValueError(
            f"{where}{smiles!r} has formal charges on {', '.join(charged)}: a graph matrix (atomic numbers and bond"
            " orders) has no place for them, so the molecule would lose them. Give its neutral form (e.g. RDKit's"
            " rdMolStandardize.Uncharger) or leave it out."
        )
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    orders = [b.GetBondTypeAsDouble() for b in mol.GetBonds()]
    return Molecule(
        smiles=smiles,
        atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.int64),
        bonds=torch.tensor(bonds, dtype=torch.int64).reshape(-1, 2),
        bond_orders=torch.tensor(orders, dtype=torch.float32),
    )


def embed_conformer(smiles: str, seed: int, mmff_steps: int = 200) -> Molecule:
    """One conformer of ``smiles`` with explicit hydrogens: ETKDG embedding from ``seed``, then
    ``mmff_steps`` iterations of MMFF relaxation (RDKit).

    Raises:
        ValueError: RDKit cannot parse or embed the molecule, or has no MMFF parameters for it.

    Examples:
        >>> water_like = embed_conformer("CO", seed=0)
        >>> water_like.num_atoms, tuple(water_like.conformers.shape)
        (6, (1, 6, 3))
    """
    AllChem: Any = require("rdkit.Chem.AllChem", "chem", _MOLECULES)
    chem = _chem()
    parsed = chem.MolFromSmiles(smiles)
    if parsed is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}.")
    mol = chem.AddHs(parsed)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) % 2**31
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise ValueError(f"RDKit cannot embed {smiles!r} in 3-D (ETKDG, seed {seed}).")
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        raise ValueError(f"MMFF has no parameters for {smiles!r}.")
    AllChem.MMFFOptimizeMolecule(mol, maxIters=mmff_steps)
    molecule = _graph(mol, smiles)
    molecule.conformers = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32)[None]
    return molecule


#: The largest coordinate :func:`read_geom` accepts, in Å: a molecule spans a few tens of them.
MAX_COORDINATE = 1e4


def read_geom(path: str | os.PathLike[str], limit: int | None = None) -> Iterator[Molecule]:
    """The molecules of a GEOM MessagePack file, each with its conformers.

    The file is a stream of maps ``{smiles: {"conformers": [{"xyz": [[Z, x, y, z], ...]}, ...]}}``
    (GEOM's ``drugs_crude.msgpack``); the graph is rebuilt from the SMILES with RDKit and its
    atoms must match each conformer's elements, in order. Never unpickled: MessagePack only.
    Everything read is checked: the stream must end where the file ends (a truncated file is
    refused, not cut short), coordinates must be finite and within :data:`MAX_COORDINATE` Å,
    atomic numbers whole numbers, molecules neutral. ``limit``: the most molecules to read
    (``0``: none).

    Raises:
        ValueError: a record that is not in that format, naming the file and the SMILES.
    """
    msgpack = require("msgpack", "chem", "read_geom (GEOM's MessagePack files)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"`limit` must be None or an integer >= 0, got {limit!r}.")
    if limit == 0:
        return
    chem = _chem()
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path}: the file is empty (a download cut short?); download it again.")
    with open(path, "rb") as handle:
        for count, (smiles, record) in enumerate(_geom_records(msgpack, handle, path, size), start=1):
            yield _geom_molecule(chem, path, smiles, record)
            if limit is not None and count >= limit:
                return


def _geom_records(msgpack: Any, handle: Any, path: Any, size: int) -> Iterator[tuple[Any, Any]]:
    """The ``(smiles, record)`` pairs of the maps of a GEOM MessagePack stream, in order, for
    :func:`read_geom`; anything else in the stream is refused, naming the file, and so is a
    stream that does not end where the file ends."""
    unpacker = msgpack.Unpacker(handle, raw=False, strict_map_key=False)
    complete = 0
    try:
        for chunk in unpacker:
            complete = unpacker.tell()  # where the last whole record ends
            if not isinstance(chunk, dict):
                raise ValueError(f"{path}: expected maps of SMILES to records, got {type(chunk).__name__}.")
            yield from chunk.items()
    except (msgpack.exceptions.UnpackException, ValueError) as err:
        if str(err).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: not a MessagePack stream GEOM writes ({err or type(err).__name__}).") from None
    if complete != size:
        raise ValueError(
            f"{path}: the MessagePack stream's last whole record ends at byte {complete} of {size}: the file"
            " is truncated or damaged (what follows is an incomplete record); download it again."
        )


def _geom_molecule(chem: Any, path: Any, smiles: Any, record: Any) -> Molecule:
    """One molecule of :func:`read_geom`, checked."""
    conformers = record.get("conformers") if isinstance(record, dict) else None
    if not isinstance(smiles, str) or not isinstance(conformers, list) or not conformers:
        raise ValueError(f"{path}: the record of {smiles!r} has no conformers.")
    parsed = chem.MolFromSmiles(smiles)
    if parsed is None:
        raise ValueError(f"{path}: RDKit cannot parse {smiles!r}.")
    molecule = _graph(chem.AddHs(parsed), smiles, where=f"{path}: ")
    blocks = []
    for index, conformer in enumerate(conformers):
        try:
            block = torch.tensor(conformer["xyz"], dtype=torch.float64)
        except (TypeError, KeyError, ValueError, RuntimeError) as err:
            raise ValueError(f"{path}: conformer {index} of {smiles!r} has no numeric 'xyz' table ({err}).") from None
        if block.shape != (molecule.num_atoms, 4):
            raise ValueError(
                f"{path}: conformer {index} of {smiles!r} has shape {tuple(block.shape)}; its graph has"
                f" {molecule.num_atoms} atoms, so rows of [Z, x, y, z] of shape ({molecule.num_atoms}, 4)."
            )
        numbers, coordinates = block[:, 0], block[:, 1:]
        if not bool(torch.isfinite(block).all()):
            raise ValueError(f"{path}: conformer {index} of {smiles!r} holds non-finite values (NaN or inf).")
        if not torch.equal(numbers, numbers.round()):
            raise ValueError(f"{path}: conformer {index} of {smiles!r} has atomic numbers that are not whole numbers.")
        if not torch.equal(numbers.long(), molecule.atomic_numbers):
            raise ValueError(
                f"{path}: conformer {index} of {smiles!r} does not match its graph's atoms"
                f" ({molecule.num_atoms} atoms, elements in RDKit's order)."
            )
        largest = float(coordinates.abs().max())
        if largest > MAX_COORDINATE:
            raise ValueError(
                f"{path}: conformer {index} of {smiles!r} has a coordinate of {largest:.3g} Å (more than"
                f" {MAX_COORDINATE:g}): not a conformer in Å."
            )
        blocks.append(coordinates)
    molecule.conformers = torch.stack(blocks).float()
    return molecule


@plain_numbers
class ConformerDataModule(pl.LightningDataModule):
    r"""Conformers of small drug-like molecules as fixed-size items, offline.

    Molecules have different numbers of atoms; an item pads them to ``max_atoms`` with a mask, so
    that it is made of plain tensors the loop stores in safetensors shards and verifies like any
    other (no pickling, no ragged storage):

    - ``"pos"``: ``(max_atoms, 3)`` float32 coordinates in Å, zero beyond the molecule's atoms
      (the field the model generates: the loop's ``data_field: pos``);
    - ``"graph"``: ``(max_atoms, max_atoms)`` int64, the molecular graph
      (:func:`~sclc_lightning.chemistry.graph_matrix`: atomic numbers on the diagonal, bond codes
      elsewhere): the condition (``condition_field: graph``), all a model, the force-field
      corrector or the metrics need to rebuild the molecule;
    - ``"atoms"``: ``(max_atoms,)`` int64 atomic numbers, 0 beyond them;
    - ``"mask"``: ``(max_atoms,)`` bool, which rows are atoms;
    - ``"mol"``: the molecule's index in :attr:`molecules`, int64.

    A synthetic item copies every field but ``pos`` from its source real item: the same molecule.
    Each molecule's conformers are embedded at set-up (:func:`embed_conformer`, seeds from
    ``seed``): ``train_conformers`` for training, ``test_conformers`` held out.

    Args:
        num_molecules: molecules taken from :func:`shipped_smiles`.
        train_conformers: training conformers per molecule.
        test_conformers: held-out conformers per molecule.
        max_heavy_atoms: the largest molecules kept.
        batch_size: training batch size.
        seed: the conformers' embedding seeds; ``None`` (default) takes the run's seed when the
            data are set up (:func:`~sclc_lightning.seeding.datamodule_seed`).
    """

    def __init__(
        self,
        num_molecules: int = 200,
        train_conformers: int = 2,
        test_conformers: int = 2,
        max_heavy_atoms: int = 16,
        batch_size: int = 64,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_arguments(
            ConformerDataModule.__init__,
            locals(),
            num_molecules=COUNT,
            train_conformers=COUNT,
            test_conformers=NON_NEGATIVE,
            max_heavy_atoms=COUNT,
            batch_size=COUNT,
            seed=NON_NEGATIVE,
        )
        if num_molecules < 1 or train_conformers < 1 or test_conformers < 0 or batch_size < 1:
            raise ValueError(
                "Need num_molecules >= 1, train_conformers >= 1, test_conformers >= 0 and batch_size >= 1, got"
                f" {num_molecules}, {train_conformers}, {test_conformers}, {batch_size}."
            )
        self.num_molecules, self.train_conformers, self.test_conformers = (
            num_molecules,
            train_conformers,
            test_conformers,
        )
        self.max_heavy_atoms, self.batch_size, self.seed = max_heavy_atoms, batch_size, seed
        self.molecules: list[Molecule] = []
        self.max_atoms = 0
        self._train: list[dict[str, Tensor]] | None = None
        self._test: list[dict[str, Tensor]] | None = None
        require("rdkit.Chem.AllChem", "chem", "ConformerDataModule (conformers embedded by RDKit)")

    def setup(self, stage: str) -> None:
        if self._train is not None:
            return
        per_molecule = self.train_conformers + self.test_conformers
        seed = datamodule_seed(self)
        for index, smiles in enumerate(shipped_smiles(self.num_molecules, max_heavy_atoms=self.max_heavy_atoms)):
            conformers = [embed_conformer(smiles, seed * 1_000_003 + index * 97 + k) for k in range(per_molecule)]
            molecule = conformers[0]
            molecule.conformers = torch.cat([c.conformers for c in conformers])
            self.molecules.append(molecule)
        self.max_atoms = max(m.num_atoms for m in self.molecules)
        self._train = [self.item(i, k) for i in range(len(self.molecules)) for k in range(self.train_conformers)]
        self._test = [
            self.item(i, self.train_conformers + k)
            for i in range(len(self.molecules))
            for k in range(self.test_conformers)
        ]

    def item(self, molecule: int, conformer: int) -> dict[str, Tensor]:
        """Conformer ``conformer`` of molecule ``molecule`` as a padded item."""
        m, count = self.molecules[molecule], self.molecules[molecule].num_atoms
        pos = torch.zeros(self.max_atoms, 3)
        pos[:count] = m.conformers[conformer]
        atoms = torch.zeros(self.max_atoms, dtype=torch.int64)
        atoms[:count] = m.atomic_numbers
        mask = torch.zeros(self.max_atoms, dtype=torch.bool)
        mask[:count] = True
        graph = m.graph(self.max_atoms)
        return {"pos": pos, "graph": graph, "atoms": atoms, "mask": mask, "mol": torch.tensor(molecule)}

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        assert self._train is not None
        return DataLoader(self._train, batch_size=self.batch_size, shuffle=True)  # type: ignore[arg-type]

    def test_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        assert self._test is not None
        return DataLoader(self._test, batch_size=self.batch_size)  # type: ignore[arg-type]
