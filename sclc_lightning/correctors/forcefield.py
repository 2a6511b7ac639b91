r"""The force-field corrector: the chemistry analogue of the physics corrector (Gillman et al. §6).

Each generated conformer is relaxed by a set number of MMFF94 minimisation steps (RDKit) from its
own coordinates, and the relaxed conformer is blended with the generated one by the strength
:math:`\gamma` exactly as the physics corrector blends a motion with its simulated replay:
:math:`(y + \gamma\,\mathrm{relax}(y)) / (1 + \gamma)`, so :math:`\gamma = \infty` keeps the
relaxed conformer and :math:`\gamma = 0` the generated one. The molecule comes from the item's
condition, its graph matrix (:func:`sclc_lightning.chemistry.graph_matrix`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, NON_NEGATIVE, bounded, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["ForceFieldCorrector"]


@register_corrector("forcefield")
@plain_numbers
class ForceFieldCorrector(Corrector):
    r"""Relax each conformer ``(atoms, 3)`` (Å) with ``steps`` MMFF94 iterations and blend by γ.

    The items' condition field must be the molecule's graph matrix (``condition_field: graph``
    with :class:`~sclc_lightning.datasets.molecules.ConformerDataModule`), checked at set-up.
    Conformers are relaxed one by one in ``num_workers`` worker processes that die with the fit
    (even after ``kill -9``), ``chunk_size`` per task, so the result is the same for any number of
    workers. A conformer that MMFF cannot relax to finite coordinates (atoms on top of each other)
    is kept as generated, and counted in the reported ``forcefield_unrelaxed``; the mean RMS
    displacement of the relaxation is reported as ``forcefield_shift`` (Å).

    Args:
        strength: :math:`\gamma`.
        steps: MMFF minimisation iterations per conformer.
        num_workers: worker processes (default: the CPU cores this process may use; ``0`` runs in
            this process).
        chunk_size: conformers per task.
        start_method: multiprocessing start method of the workers (default ``fork`` where
            available).
    """

    deciding = ("steps",)
    pointwise = True
    operational = ("num_workers", "chunk_size", "start_method")
    ranges = bounded(steps=COUNT, num_workers=NON_NEGATIVE, chunk_size=COUNT)

    supports = frozenset({"continuous", "conditional"})

    def __init__(
        self,
        strength: float = math.inf,
        steps: int = 200,
        num_workers: int | None = None,
        chunk_size: int = 16,
        start_method: Literal["fork", "spawn", "forkserver"] | None = None,
    ) -> None:
        super().__init__(strength)
        check_arguments(ForceFieldCorrector, locals())
        from sclc_lightning._process import default_workers

        self.steps, self.chunk_size, self.start_method = int(steps), int(chunk_size), start_method
        self.num_workers = default_workers() if num_workers is None else num_workers
        require("rdkit.Chem.AllChem", "chem", "The `forcefield` corrector (MMFF in RDKit)")

    def check_items(self, reference: RealData) -> None:
        """Refuse items whose condition is not a graph matrix matching the conformers' rows."""
        super().check_items(reference)
        codec = reference.codec
        example = reference.items([0])[0]
        data = codec.data_of(example)
        graph = codec.field(example, codec.condition_key) if codec.condition_key is not None else None
        rows = data.shape[0] if data.dim() == 2 else None
        if (
            not isinstance(graph, Tensor)
            or graph.is_floating_point()
            or tuple(graph.shape) != (rows, rows)
            or data.shape[-1] != 3
        ):
            got = f"{graph.dtype} of shape {tuple(graph.shape)}" if isinstance(graph, Tensor) else type(graph).__name__
            raise ValueError(
                f"Corrector 'forcefield' needs conformers (atoms, 3) and, as the condition field, the molecule's"
                f" graph matrix (atoms, atoms), integers; the data field {codec.data_key!r} is"
                f" {tuple(data.shape)} and the condition {codec.condition_key!r} is {got}. Use"
                " ConformerDataModule's items with `data_field: pos` and `condition_field: graph`."
            )
        # every molecule of the real data, not the first alone: one MMFF cannot type would stop the
        # run at generation 1, after generation 0 has trained
        from sclc_lightning.chemistry import check_graphs

        items = reference.items(list(range(len(reference))))
        graphs = torch.stack([torch.as_tensor(codec.field(item, codec.condition_key)) for item in items])
        check_graphs(graphs, "Corrector 'forcefield'", mmff=True)

    def relax(self, graphs: Tensor, conformers: Tensor) -> Tensor:
        """The relaxed conformers (no blending), float64; padding rows unchanged."""
        from sclc_lightning.chemistry import mmff_relax

        with self.progress(len(conformers), "Relaxing conformers (MMFF)") as bar:
            return mmff_relax(
                graphs,
                conformers,
                self.steps,
                num_workers=self.num_workers,
                chunk_size=self.chunk_size,
                progress=bar.update,
                start_method=self.start_method,
            )

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0:
            return batch.data
        generated = batch.data.detach().cpu()
        graphs = torch.as_tensor(batch.conditions).cpu()
        relaxed = self.relax(graphs, generated)
        finite = torch.isfinite(relaxed).flatten(1).all(1)
        relaxed = torch.where(finite[:, None, None], relaxed, generated.double())
        mask = (graphs.diagonal(dim1=1, dim2=2) > 0).double()
        squared = (relaxed - generated.double()).pow(2).sum(-1)
        shift = (squared * mask).sum(1) / mask.sum(1).clamp_min(1)
        self.report(forcefield_shift=float(shift.sqrt().mean()), forcefield_unrelaxed=float((~finite).sum()))
        return self.mix(batch.data, relaxed.to(batch.data.device))
