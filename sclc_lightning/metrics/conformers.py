r"""Metrics of generated molecular conformers, as GeoDiff and its successors report them on
GEOM-Drugs: the RMSD after the best alignment (RDKit's ``GetBestRMS``, heavy atoms, symmetry
aware), coverage (COV-R) and matching (MAT-R) of the reference conformers, and the share of
generated conformers with sane bond lengths.

- COV-R: the share of reference conformers with a generated one within ``threshold`` Å (1.25 Å
  for GEOM-Drugs);
- MAT-R: the mean, over the reference conformers, of the RMSD to the closest generated one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from sclc_lightning._extras import require

__all__ = ["best_rmsd", "coverage_matching", "rmsd_matrix", "sane_bond_share"]


_CONFORMER_METRICS = "Conformer metrics (RDKit)"


def _heavy(mol: Any) -> Any:
    return require("rdkit.Chem", "chem", _CONFORMER_METRICS).RemoveHs(mol)


def best_rmsd(molecule: Any, probe: Tensor, reference: Tensor) -> float:
    r"""The RMSD in Å between two conformers of ``molecule`` (a :class:`~sclc_lightning.datasets.molecules.Molecule`)
    after the best rigid alignment over the heavy atoms' symmetry-equivalent orderings.

    Examples:
        >>> from sclc_lightning.datasets.molecules import embed_conformer
        >>> mol = embed_conformer("CCO", seed=0)
        >>> round(best_rmsd(mol, mol.conformers[0], mol.conformers[0]), 6)
        0.0
    """
    rdMolAlign = require("rdkit.Chem.rdMolAlign", "chem", _CONFORMER_METRICS)
    pair = dataclasses.replace(molecule, conformers=torch.stack([probe.float(), reference.float()]))
    heavy = _heavy(pair.to_rdkit())
    return float(rdMolAlign.GetBestRMS(heavy, heavy, prbId=0, refId=1))


def rmsd_matrix(molecule: Any, generated: Tensor, reference: Tensor) -> Tensor:
    """``(len(generated), len(reference))`` best RMSDs between every pair of conformers."""
    return torch.tensor(
        [[best_rmsd(molecule, g, r) for r in reference] for g in generated], dtype=torch.float64
    ).reshape(len(generated), len(reference))


def coverage_matching(
    molecule: Any, generated: Tensor, reference: Tensor, threshold: float = 1.25
) -> tuple[float, float]:
    """COV-R and MAT-R of ``generated`` conformers against ``reference`` ones.

    Examples:
        >>> from sclc_lightning.datasets.molecules import embed_conformer
        >>> mol = embed_conformer("CCCO", seed=0)
        >>> coverage_matching(mol, mol.conformers, mol.conformers)
        (1.0, 0.0)
    """
    distances = rmsd_matrix(molecule, generated, reference)
    closest = distances.min(0).values
    return float((closest <= threshold).double().mean()), float(closest.mean())


def sane_bond_share(molecule: Any, conformers: Tensor, low: float = 0.8, high: float = 1.25) -> float:
    r"""The share of ``conformers`` whose every bond length is within ``low``–``high`` times its
    expected length, and that RDKit can sanitise with those coordinates. The expected length is
    the sum of the two atoms' covalent radii (RDKit's table) shortened by bond order as Pauling's
    relation has it, :math:`d_n = d_1 - 0.71 \log_{10} n` Å (C–C 1.52, C=C 1.31, C≡C 1.18 Å).

    Examples:
        >>> from sclc_lightning.datasets.molecules import embed_conformer
        >>> mol = embed_conformer("CCO", seed=0)
        >>> sane_bond_share(mol, torch.cat([mol.conformers, 3 * mol.conformers]))
        0.5
    """
    Chem = require("rdkit.Chem", "chem", _CONFORMER_METRICS)
    table = Chem.GetPeriodicTable()
    radii = torch.tensor([table.GetRcovalent(int(z)) for z in molecule.atomic_numbers], dtype=torch.float64)
    i, j = molecule.bonds[:, 0], molecule.bonds[:, 1]
    expected = radii[i] + radii[j] - 0.71 * torch.log10(molecule.bond_orders.double())
    sane = 0
    for index, coords in enumerate(conformers.double()):
        lengths = (coords[i] - coords[j]).norm(dim=1)
        ratio = lengths / expected
        if not bool(((ratio >= low) & (ratio <= high)).all()):
            continue
        mol = Chem.Mol(dataclasses.replace(molecule, conformers=conformers[index : index + 1]).to_rdkit())
        if Chem.SanitizeMol(mol, catchErrors=True) == Chem.SanitizeFlags.SANITIZE_NONE:
            sane += 1
    return sane / max(len(conformers), 1)
