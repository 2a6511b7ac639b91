r"""Molecular graphs as plain tensors, RDKit molecules built from them, and MMFF relaxation in
worker processes (the force-field corrector's engine).

A molecule's graph travels in the items as one ``(max_atoms, max_atoms)`` int64 matrix
(:func:`graph_matrix`): the diagonal holds the atomic numbers (0 beyond the molecule's atoms),
the other entries the bond between two atoms (:data:`BOND_CODES`: 0 none, 1 single, 2 double,
3 triple, 4 aromatic). The hydrogens are explicit atoms. It is a tensor like any other, so the
loop stores, verifies and copies it without pickling, and a model, a corrector or a metric
rebuilds the molecule from it alone (:func:`rdkit_molecule`). Formal charges are not encoded:
charged molecules are refused.

The workers use numpy and RDKit only: torch's thread pool does not survive a ``fork``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sclc_lightning._extras import require
from sclc_lightning._process import run_chunks

__all__ = [
    "BOND_CODES",
    "check_graphs",
    "graph_matrix",
    "graph_parts",
    "mmff_relax",
    "rdkit_molecule",
]

#: Bond order -> code in a graph matrix (aromatic bonds have order 1.5).
BOND_CODES = {1.0: 1, 2.0: 2, 3.0: 3, 1.5: 4}
_ORDERS = {code: order for order, code in BOND_CODES.items()}


#: The feature the ``chem`` extra's message names.
_MOLECULES = "Molecules (RDKit)"


def _chem() -> Any:
    return require("rdkit.Chem", "chem", _MOLECULES)


def graph_matrix(atomic_numbers: Tensor, bonds: Tensor, bond_orders: Tensor, size: int) -> Tensor:
    """The ``(size, size)`` int64 graph matrix of a molecule (see the module's docstring).

    Raises:
        ValueError: more atoms than ``size``, or a bond order without a code.

    Examples:
        >>> m = graph_matrix(torch.tensor([6, 8]), torch.tensor([[0, 1]]), torch.tensor([2.0]), 3)
        >>> m.tolist()
        [[6, 2, 0], [2, 8, 0], [0, 0, 0]]
    """
    count = int(atomic_numbers.numel())
    if count > size:
        raise ValueError(f"A molecule of {count} atoms does not fit a graph matrix of {size}.")
    out = torch.zeros(size, size, dtype=torch.int64)
    out[range(count), range(count)] = atomic_numbers.long()
    for (i, j), order in zip(bonds.tolist(), bond_orders.tolist()):
        if float(order) not in BOND_CODES:
            raise ValueError(f"Bond {i}-{j} has order {order}; graph matrices encode {sorted(BOND_CODES)}.")
        out[i, j] = out[j, i] = BOND_CODES[float(order)]
    return out


def graph_parts(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(atomic_numbers, bonds, bond_orders)`` of a graph matrix: the atoms are the leading rows
    with a non-zero diagonal, the bonds the pairs ``i < j`` with a non-zero code.

    Raises:
        ValueError: padding rows before atoms, or an unknown bond code.

    Examples:
        >>> parts = graph_parts(torch.tensor([[6, 2, 0], [2, 8, 0], [0, 0, 0]]))
        >>> [p.tolist() for p in parts]
        [[6, 8], [[0, 1]], [2.0]]
    """
    atoms, bonds, orders = _parts(matrix.detach().cpu().numpy())
    return torch.from_numpy(atoms), torch.from_numpy(bonds), torch.from_numpy(orders)


def _parts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`graph_parts` in numpy (workers use no torch: its thread pool does not survive a fork)."""
    diagonal = np.diagonal(matrix).astype(np.int64)
    count = int((diagonal > 0).sum())
    if not bool((diagonal[:count] > 0).all()):
        raise ValueError("A graph matrix must list its atoms first (the padding rows last).")
    block = np.triu(matrix[:count, :count].astype(np.int64), k=1)
    i, j = np.nonzero(block)
    codes = block[i, j].tolist()
    if any(code not in _ORDERS for code in codes):
        raise ValueError(f"Unknown bond codes {sorted(set(codes) - set(_ORDERS))}; known: {sorted(_ORDERS)}.")
    orders = np.array([_ORDERS[c] for c in codes], dtype=np.float32)
    return diagonal[:count].copy(), np.stack([i, j], 1).astype(np.int64).reshape(-1, 2), orders


def rdkit_molecule(atomic_numbers: Any, bonds: Any, bond_orders: Any, conformers: Any = None) -> Any:
    """A sanitised RDKit molecule with these atoms (hydrogens explicit, no implicit ones added),
    in this order, and these bonds; with one RDKit conformer per row of ``conformers``
    (``(num, atoms, 3)``, Å). Tensors or numpy arrays.

    Raises:
        ValueError: RDKit cannot sanitise the graph (a valence it does not allow, a charged atom).
    """
    Point3D = require("rdkit.Geometry", "chem", _MOLECULES).Point3D
    chem = _chem()
    types = {
        1.0: chem.BondType.SINGLE,
        2.0: chem.BondType.DOUBLE,
        3.0: chem.BondType.TRIPLE,
        1.5: chem.BondType.AROMATIC,
    }
    editable = chem.RWMol()
    atomic_numbers, bonds, bond_orders = (np.asarray(a) for a in (atomic_numbers, bonds, bond_orders))
    for z in atomic_numbers.tolist():
        atom = chem.Atom(int(z))
        atom.SetNoImplicit(True)
        editable.AddAtom(atom)
    for (i, j), order in zip(bonds.tolist(), bond_orders.tolist()):
        editable.AddBond(int(i), int(j), types[float(order)])
        if float(order) == 1.5:
            editable.GetBondBetweenAtoms(int(i), int(j)).SetIsAromatic(True)
            editable.GetAtomWithIdx(int(i)).SetIsAromatic(True)
            editable.GetAtomWithIdx(int(j)).SetIsAromatic(True)
    mol = editable.GetMol()
    problem = chem.SanitizeMol(mol, catchErrors=True)
    if problem != chem.SanitizeFlags.SANITIZE_NONE:
        raise ValueError(f"RDKit cannot sanitise the graph with atoms {atomic_numbers.tolist()} ({problem}).")
    if conformers is not None:
        count = int(atomic_numbers.size)
        for coords in np.asarray(conformers, dtype=np.float64).tolist():
            conformer = chem.Conformer(count)
            for atom, (x, y, z) in enumerate(coords[:count]):
                conformer.SetAtomPosition(atom, Point3D(x, y, z))
            mol.AddConformer(conformer, assignId=True)
    return mol


def check_graphs(graphs: Tensor, who: str, mmff: bool = False) -> int:
    """Check every distinct graph matrix of ``graphs`` (``(num, atoms, atoms)``) before anything
    trains: bond codes, RDKit's sanitising (a valence a neutral atom cannot have: a charge the
    matrix lost) and, with ``mmff``, MMFF typing. Returns how many distinct molecules it checked.

    Raises:
        ValueError: naming ``who``, the first item with that molecule, its atoms and the fix.

    Examples:
        >>> good = graph_matrix(torch.tensor([6, 8]), torch.tensor([[0, 1]]), torch.tensor([2.0]), 2)
        >>> check_graphs(good[None].repeat(3, 1, 1), "example")
        1
    """
    AllChem: Any = require("rdkit.Chem.AllChem", "chem", _MOLECULES) if mmff else None
    flat = graphs.detach().cpu().long().flatten(1).numpy()
    _, first = np.unique(flat, axis=0, return_index=True)
    for index in sorted(first.tolist()):
        matrix = graphs[index].detach().cpu().long().numpy()
        try:
            atoms, bonds, orders = _parts(matrix)
            mol = rdkit_molecule(atoms, bonds, orders)
        except (ValueError, KeyError) as err:
            raise ValueError(
                f"{who}: the graph matrix of item {index} is not a molecule RDKit accepts ({err}). Graph matrices hold"
                " neutral molecules with explicit hydrogens and bond codes 1/2/3/4; a charged molecule cannot be"
                " an item: give its neutral form or leave it out."
            ) from None
        if mmff and not AllChem.MMFFHasAllMoleculeParams(mol):
            raise ValueError(
                f"{who}: MMFF has no parameters for the molecule of item {index} (atoms {atoms.tolist()}), so the force"
                " field cannot relax it; leave it out of the data or use another corrector."
            )
    return len(first)


def _relax_chunk(job: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    """MMFF relaxation of each conformer of one chunk (a worker's task)."""
    AllChem: Any = require("rdkit.Chem.AllChem", "chem", _MOLECULES)
    graphs, positions, steps = job
    out = positions.copy()
    for index, (graph, pos) in enumerate(zip(graphs, positions)):
        atoms, bonds, orders = _parts(graph)
        count = int(atoms.size)
        mol = rdkit_molecule(atoms, bonds, orders, pos[None, :count])
        properties = AllChem.MMFFGetMoleculeProperties(mol)
        if properties is None:
            raise ValueError(f"MMFF has no parameters for the molecule with atoms {atoms.tolist()}.")
        field = AllChem.MMFFGetMoleculeForceField(mol, properties)
        field.Initialize()
        field.Minimize(maxIts=int(steps))
        out[index, :count] = np.asarray(field.Positions(), dtype=np.float64).reshape(count, 3)
    return out


def mmff_relax(
    graphs: Tensor,
    positions: Tensor,
    steps: int,
    num_workers: int = 0,
    chunk_size: int = 16,
    progress: Callable[[int], None] | None = None,
    start_method: str | None = None,
) -> Tensor:
    """Each conformer ``positions[k]`` (``(num, max_atoms, 3)``, Å) of the molecule ``graphs[k]``
    (graph matrices), relaxed by ``steps`` iterations of MMFF94 minimisation (RDKit), in
    ``num_workers`` worker processes that die with this one. Conformers are relaxed one by one
    from their own coordinates, so the result does not depend on the workers or the chunking;
    padding rows stay as they are.

    Raises:
        ValueError: a molecule RDKit cannot sanitise or MMFF has no parameters for.
    """
    if graphs.dim() != 3 or positions.dim() != 3 or positions.shape[:2] != graphs.shape[:2]:
        raise ValueError(
            f"mmff_relax needs graphs (num, atoms, atoms) and positions (num, atoms, 3), got"
            f" {tuple(graphs.shape)} and {tuple(positions.shape)}."
        )
    if steps < 0:
        raise ValueError(f"`steps` must be >= 0, got {steps}.")
    g = graphs.detach().cpu().long().numpy()
    p = positions.detach().cpu().double().numpy()
    chunks = [(g[i : i + chunk_size], p[i : i + chunk_size], steps) for i in range(0, len(p), chunk_size)]
    out = run_chunks(_relax_chunk, chunks, num_workers, progress, [len(c[0]) for c in chunks], start_method)
    return torch.from_numpy(np.concatenate(out)) if out else positions.detach().cpu().double().clone()
