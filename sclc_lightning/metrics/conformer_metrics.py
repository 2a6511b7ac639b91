"""Per-generation evaluation of a conformer model on held-out molecules: coverage and matching of
the held-out conformers (COV-R, MAT-R) and the share of generated conformers with sane bonds."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, POSITIVE, bounded, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning._trainer import find_loop
from sclc_lightning.datasets.molecules import Molecule
from sclc_lightning.metrics.conformers import coverage_matching, sane_bond_share
from sclc_lightning.metrics.evaluator import GenerationEvaluator

__all__ = ["ConformerMetrics"]


@plain_numbers
class ConformerMetrics(GenerationEvaluator):
    """After every ``every`` generations, generate ``ratio`` conformers per held-out conformer of
    each molecule of the DataModule's test split (GEOM's protocol: twice as many as the
    references), asking the model for the molecule's graph (the loop's condition field), and log:

    - ``cov_r``: COV-R, the share of held-out conformers with a generated one within
      ``threshold`` Å of best-aligned heavy-atom RMSD (RDKit's ``GetBestRMS``), averaged over the
      molecules; 1.25 Å as for GEOM-Drugs;
    - ``mat_r``: MAT-R, the mean RMSD (Å) of each held-out conformer to its closest generated one,
      averaged over the molecules;
    - ``sane_bond_share``: the share of generated conformers whose every bond length is within
      0.8–1.25 times the atoms' covalent radii and that RDKit sanitises;
    - ``time_evaluating_s``.

    The items are dicts with the conformer as the loop's data field and the molecule's graph
    matrix as its condition field (:class:`~sclc_lightning.datasets.molecules.ConformerDataModule`);
    molecules are told apart by their graphs. Samples are drawn as in every evaluator, shared out
    over the DDP ranks and seeded by (``seed``, generation).

    Args:
        ratio: conformers generated per held-out conformer.
        threshold: the COV-R threshold in Å.
        every: evaluate every ``every`` generations.
        batch_size: conformers per ``sample`` call.
        seed: seed of the evaluation draws; `None` (default) takes the run's seed (the loop's).

    Examples:
        >>> from sclc_lightning.callbacks import ConformerMetrics
        >>> metrics = ConformerMetrics(ratio=2, threshold=1.25)
    """

    headline = "cov_r"
    ranges = bounded(ratio=COUNT, threshold=POSITIVE)

    def __init__(
        self, ratio: int = 2, threshold: float = 1.25, every: int = 1, batch_size: int = 256, seed: int | None = None
    ) -> None:
        check_arguments(ConformerMetrics, locals())
        super().__init__(2, every, batch_size, seed)
        self.ratio, self.threshold = ratio, float(threshold)
        self._references: tuple[Tensor, Tensor] | None = None
        require("rdkit.Chem", "chem", "ConformerMetrics (RDKit)")

    def references(self, trainer: pl.Trainer) -> tuple[Tensor, Tensor]:
        """The held-out conformers ``(n, atoms, 3)`` and their graph matrices ``(n, atoms, atoms)``."""
        if self._references is not None:
            return self._references
        loop = find_loop(trainer)
        datamodule = getattr(trainer, "datamodule", None)
        if loop is None or loop.real_data.codec.condition_key is None:
            raise ValueError("ConformerMetrics needs the SelfConsumingLoop with `condition_field` (the graph matrix).")
        if datamodule is None or not hasattr(datamodule, "test_dataloader"):
            raise ValueError("ConformerMetrics needs a DataModule with a `test_dataloader` (held-out conformers).")
        codec = loop.real_data.codec
        positions, graphs = [], []
        for batch in datamodule.test_dataloader():
            positions.append(torch.as_tensor(batch[codec.data_key]))
            graphs.append(torch.as_tensor(batch[codec.condition_key]))
        self._references = (torch.cat(positions).float(), torch.cat(graphs).long())
        return self._references

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Read and check the held-out conformers before generation 0 trains.

        Raises:
            ValueError: no loop with a condition field, no held-out split, or items that are not
                conformers ``(atoms, 3)`` with their graph matrices ``(atoms, atoms)``.
        """
        self._references = None  # a callback may serve several fits
        positions, graphs = self.references(trainer)
        if (
            positions.dim() != 3
            or positions.shape[-1] != 3
            or tuple(graphs.shape) != (*positions.shape[:2], positions.shape[1])
        ):
            raise ValueError(
                "ConformerMetrics needs conformers (atoms, 3) as the data field and the molecules' graph matrices"
                f" (atoms, atoms) as the condition field; the held-out items give {tuple(positions.shape[1:])} and"
                f" {tuple(graphs.shape[1:])}. Use ConformerDataModule's items (`data_field: pos`,"
                " `condition_field: graph`)."
            )
        from sclc_lightning.chemistry import check_graphs

        check_graphs(graphs, "ConformerMetrics (held-out items)")

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        positions, graphs = self.references(trainer)
        asked = graphs.repeat(self.ratio, 1, 1)
        self.num_samples = len(asked)
        samples = self.draw(trainer, pl_module, generation, asked)
        _, molecule_of = torch.unique(graphs.flatten(1), dim=0, return_inverse=True)
        asked_molecule = molecule_of.repeat(self.ratio)
        coverage, matching, sane, total = [], [], 0.0, 0
        for index in range(int(molecule_of.max()) + 1):
            references = (molecule_of == index).nonzero().flatten()
            generated = (asked_molecule == index).nonzero().flatten()
            molecule = Molecule.from_graph(graphs[references[0]])
            atoms = molecule.num_atoms
            mine = samples[generated, :atoms].float()
            cov, mat = coverage_matching(molecule, mine, positions[references, :atoms], self.threshold)
            coverage.append(cov)
            matching.append(mat)
            sane += sane_bond_share(molecule, mine) * len(mine)
            total += len(mine)
        return {
            "cov_r": float(torch.tensor(coverage).mean()),
            "mat_r": float(torch.tensor(matching).mean()),
            "sane_bond_share": sane / max(total, 1),
        }
