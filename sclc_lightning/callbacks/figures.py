"""Pictures of each generation's samples: scatter plots (2-D points), grids (images), stick figures (motions)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from sclc_lightning._checks import COUNT, NON_NEGATIVE, bounded, check_arguments, is_integer, plain_numbers
from sclc_lightning._files import atomic_path
from sclc_lightning._lightning_compat import classes_named
from sclc_lightning._trainer import current_generation, eval_mode, evaluation_seed, find_loop, sample_data
from sclc_lightning.seeding import make_generator

__all__ = ["SampleFigures", "save_motion_figure", "save_sample_figure"]


def save_motion_figure(motions: Tensor, path: Path, title: str, labels: Tensor | None = None) -> None:
    """Stick figures of planar-biped motions ``(N, frames, 9)``: one panel per motion, every
    few frames drawn over each other, later frames darker, the floor as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sclc_lightning.physics.sim import BONES, MOTION_TYPES, Biped

    biped = Biped()
    count = min(len(motions), 8)
    columns = min(4, count)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.6 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= count:
            continue
        points = biped.skeleton(motions[index].double().numpy())
        frames = range(0, len(points), max(1, len(points) // 6))
        for k, frame in enumerate(frames):
            shade = 0.25 + 0.75 * (k + 1) / len(frames)
            for a, b in BONES:
                ax.plot(*points[frame, [a, b]].T, color=(0.1, 0.3, 0.7, shade), linewidth=1.2)
        low, high = points[..., 0].min() - 0.3, points[..., 0].max() + 0.3
        ax.plot([low, high], [0, 0], color="0.4", linewidth=1)
        ax.set_xlim(low, high)
        ax.set_ylim(min(-0.3, points[..., 1].min() - 0.05), max(1.6, points[..., 1].max() + 0.05))
        ax.set_aspect("equal")
        if labels is not None:
            label = int(labels[index])
            ax.set_title(MOTION_TYPES[label] if 0 <= label < len(MOTION_TYPES) else str(label), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # the report may read it while a run goes on
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def save_sample_figure(
    samples: Tensor, path: Path, title: str, reference: Tensor | None = None, labels: Tensor | None = None
) -> bool:
    """Save a scatter plot (``(N, 2)`` points, over ``reference`` in grey), an image grid
    (``(N, C, H, W)`` in [-1, 1]) or stick figures (planar-biped motions ``(N, frames, 9)``,
    titled by ``labels``) as PNG; returns ``False`` for other shapes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples.dim() == 3 and samples.shape[-1] == 9:
        save_motion_figure(samples, path, title, labels)
        return True
    if samples.dim() == 4:
        from torchvision.utils import save_image

        with atomic_path(path) as tmp:
            save_image((samples.float() + 1) / 2, tmp, nrow=max(1, int(samples.shape[0] ** 0.5)), format="png")
        return True
    if samples.dim() != 2 or samples.shape[1] != 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    if reference is not None:
        ax.scatter(reference[:, 0], reference[:, 1], s=2, color="0.75", label="held-out data")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, color="tab:blue", label="samples")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return True


@plain_numbers
class SampleFigures(Callback):
    """After every ``every`` generations (or at the listed ``generations``), sample
    ``num_samples`` points (drawn from ``seed``; ``None``, the default, takes the run's seed; the
    same count each time) and save
    ``<run dir>/samples/generation_XXXX.png``; W&B loggers get the picture too.

    Conditional models get the conditions of the first real items (see
    :attr:`SelfConsumingLoop.real_data`).

    Args:
        num_samples: points drawn for each picture (the same count each time).
        every: draw every ``every`` generations (unless ``generations`` lists them).
        seed: seed of the draws; `None` (default) takes the run's seed (the loop's).
        generations: the generations to draw (integers >= 0), instead of every ``every``th;
            `None` (default): every ``every``th.

    Examples:
        >>> from sclc_lightning import SampleFigures
        >>> figures = SampleFigures(num_samples=256, generations=[0, 5, 10])
    """

    ranges = bounded(num_samples=COUNT, every=COUNT, seed=NON_NEGATIVE)

    def __init__(
        self, num_samples: int = 64, every: int = 1, seed: int | None = None, generations: list[int] | None = None
    ) -> None:
        check_arguments(SampleFigures, locals())
        if generations is not None and (
            not isinstance(generations, (list, tuple, set, frozenset))
            or not all(is_integer(g) and g >= 0 for g in generations)
        ):
            raise ValueError(f"`generations` must be a list of generations (integers >= 0), got {generations!r}.")
        self.num_samples, self.every, self.seed = num_samples, every, seed
        self.generations = None if generations is None else frozenset(int(g) for g in generations)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop = find_loop(trainer)
        generation = current_generation(trainer)
        if (generation % self.every) if self.generations is None else (generation not in self.generations):
            return
        generator = make_generator(evaluation_seed(self.seed, trainer), "sample", 20_000 + generation)
        reference, labels, asked = None, None, None
        if loop is not None:
            real = loop.real_data
            count = min(self.num_samples, len(real))
            conditions = real.conditions_of(torch.arange(count))
            if conditions is not None:
                asked = conditions.to(pl_module.device) if isinstance(conditions, Tensor) else conditions
                labels = conditions if isinstance(conditions, Tensor) else None
            reference = real.data() if real.codec.data_shape == (2,) else None
        else:
            count = self.num_samples
        with eval_mode(pl_module, trainer):
            samples = sample_data(trainer, pl_module, count, generator=generator, conditions=asked).cpu()
        if samples.is_floating_point():
            samples = samples.float()
        path = Path(trainer.default_root_dir) / "samples" / f"generation_{generation:04d}.png"
        if not trainer.is_global_zero or not save_sample_figure(
            samples, path, f"generation {generation}", reference, labels
        ):
            return
        for logger in trainer.loggers:
            if isinstance(logger, classes_named("loggers", "WandbLogger")):
                logger.log_image(key="samples", images=[str(path)], step=trainer.global_step, caption=[path.stem])
