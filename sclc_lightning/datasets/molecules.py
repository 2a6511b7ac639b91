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

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["ELEMENTS", "Molecule", "embed_conformer", "read_geom", "shipped_smiles"]

#: The elements kept by :func:`shipped_smiles` (hydrogen is added to every molecule).
ELEMENTS = ("H", "C", "N", "O", "F", "S", "Cl")


def _chem() -> Any:
    try:
        from rdkit import Chem
    except ImportError as err:  # pragma: no cover - the chem extra is part of the dev install
        raise ImportError("Molecules need RDKit: pip install 'sclc-lightning[chem]'.") from err
    return Chem


@dataclass
class Molecule:
    """A molecular graph with conformers.

    Attributes:
        smiles: its SMILES (with the hydrogens made explicit in the graph).
        atomic_numbers: shape ``(atoms,)``, int64.
        bonds: shape ``(bonds, 2)``, int64 atom indices.
        bond_orders: shape ``(bonds,)``, float32 (1, 1.5, 2, 3).
        conformers: shape ``(conformers, atoms, 3)``, float32, in Å.
    """

    smiles: str
    atomic_numbers: Tensor
    bonds: Tensor
    bond_orders: Tensor
    conformers: Tensor = field(default_factory=lambda: torch.empty(0, 0, 3))

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.numel())

    def to_rdkit(self, conformer: int | None = None) -> Any:
        """An RDKit molecule with explicit hydrogens, with one conformer (or all, ``None``)."""
        from rdkit.Geometry import Point3D

        chem = _chem()
        mol = chem.AddHs(chem.MolFromSmiles(self.smiles))
        if mol.GetNumAtoms() != self.num_atoms:
            raise ValueError(
                f"{self.smiles}: RDKit builds {mol.GetNumAtoms()} atoms, the molecule has {self.num_atoms}."
            )
        chosen = range(len(self.conformers)) if conformer is None else [conformer]
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
    from rdkit import RDConfig

    rdlogger: Any = importlib.import_module("rdkit.RDLogger")  # (RDKit's stubs lack these names)
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


def _graph(mol: Any, smiles: str) -> Molecule:
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
    AllChem: Any = importlib.import_module("rdkit.Chem.AllChem")
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


def read_geom(path: str | os.PathLike[str], limit: int | None = None) -> Iterator[Molecule]:
    """The molecules of a GEOM MessagePack file, each with its conformers.

    The file is a stream of maps ``{smiles: {"conformers": [{"xyz": [[Z, x, y, z], ...]}, ...]}}``
    (GEOM's ``drugs_crude.msgpack``); the graph is rebuilt from the SMILES with RDKit and its
    atoms must match each conformer's elements, in order. Never unpickled: MessagePack only.

    Raises:
        ValueError: a record that is not in that format, naming the file and the SMILES.
    """
    import msgpack

    chem = _chem()
    count = 0
    with open(path, "rb") as handle:
        for chunk in msgpack.Unpacker(handle, raw=False, strict_map_key=False):
            if not isinstance(chunk, dict):
                raise ValueError(f"{path}: expected maps of SMILES to records, got {type(chunk).__name__}.")
            for smiles, record in chunk.items():
                conformers = record.get("conformers") if isinstance(record, dict) else None
                if not isinstance(smiles, str) or not isinstance(conformers, list) or not conformers:
                    raise ValueError(f"{path}: the record of {smiles!r} has no conformers.")
                parsed = chem.MolFromSmiles(smiles)
                if parsed is None:
                    raise ValueError(f"{path}: RDKit cannot parse {smiles!r}.")
                molecule = _graph(chem.AddHs(parsed), smiles)
                xyz = [torch.tensor(c["xyz"], dtype=torch.float64) for c in conformers]
                for block in xyz:
                    if block.shape != (molecule.num_atoms, 4) or not torch.equal(
                        block[:, 0].long(), molecule.atomic_numbers
                    ):
                        raise ValueError(
                            f"{path}: a conformer of {smiles!r} does not match its graph's atoms"
                            f" ({molecule.num_atoms} atoms, elements in RDKit's order)."
                        )
                molecule.conformers = torch.stack([block[:, 1:] for block in xyz]).float()
                yield molecule
                count += 1
                if limit is not None and count >= limit:
                    return
