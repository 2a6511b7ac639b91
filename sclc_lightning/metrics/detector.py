r"""A detector of synthetic data: the classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017).

A classifier learns to tell held-out real items from the model's samples; its cross-validated
area under the ROC curve is about 0.5 when it cannot (the two come from one distribution) and
near 1 when it can (a collapsed model). Detectors of synthetic data measure how far a web's data
have drifted; per generation they show how far the loop has.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from typing_extensions import override

from sclc_lightning._checks import Range, bounded, check_arguments, plain_numbers
from sclc_lightning._trainer import find_loop
from sclc_lightning.metrics.evaluator import GenerationEvaluator, held_out

__all__ = ["CLASSIFIERS", "DetectorMetrics", "c2st_auc"]

#: The classifiers :func:`c2st_auc` knows.
CLASSIFIERS = ("mlp", "logistic")


def _classifier(kind: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=500, early_stopping=True, random_state=seed),
    )


def c2st_auc(samples: Tensor, reference: Tensor, *, classifier: str = "mlp", folds: int = 5, seed: int = 0) -> float:
    r"""The cross-validated ROC AUC of a classifier telling ``samples`` from ``reference``.

    Both are flattened to ``(n, features)`` and cut to the same number of items; every item is
    scored by the classifier trained on the other folds (stratified, shuffled with ``seed``), and
    the AUC is computed on these out-of-fold scores. ``"mlp"`` (two hidden layers of 64, early
    stopping) sees differences of any shape; ``"logistic"`` only a shift of the mean.

    Raises:
        ValueError: an unknown classifier, fewer than ``2 * folds`` items per class, or
            non-finite values.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(600, 2, generator=g), torch.randn(600, 2, generator=g)
        >>> abs(c2st_auc(a, b) - 0.5) < 0.05, c2st_auc(a, 0.1 * b) > 0.95
        (True, True)
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if classifier not in CLASSIFIERS:
        raise ValueError(f"`classifier` must be one of {list(CLASSIFIERS)}, got {classifier!r}.")
    count = min(len(samples), len(reference))
    if count < 2 * folds:
        raise ValueError(f"c2st_auc needs at least {2 * folds} items per class, got {count}.")
    x = torch.cat([samples[:count].flatten(1), reference[:count].flatten(1)]).double().cpu().numpy()
    if not np.isfinite(x).all():
        raise ValueError("c2st_auc: the items hold non-finite values.")
    y = np.r_[np.ones(count), np.zeros(count)]
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(_classifier(classifier, seed), x, y, cv=splits, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


@plain_numbers
class DetectorMetrics(GenerationEvaluator):
    r"""After each generation, how well a classifier tells the model's samples from real items:
    ``c2st_auc`` (:func:`c2st_auc`), about 0.5 when it cannot, near 1 when the model has drifted.

    The real items are the DataModule's held-out split (checked before generation 0: it must
    exist and hold at least ``2 * folds`` items); each class uses ``min(num_samples, held-out
    size)`` items, and the log says how many. The samples are drawn from the loop's sampler at
    the model's own distribution (no sampling setting, so temperature 1) unless ``sample_kwargs``
    asks for others: a loop that samples at :math:`\tau = 0.9` trains on a biased draw, but the
    detector measures the model.

    Args:
        num_samples: items per class (500 or more gives an AUC with a standard error of about
            0.02 or less).
        every: evaluate every ``every`` generations (and always at generation 0).
        classifier: ``"mlp"`` or ``"logistic"``.
        folds: cross-validation folds (an integer >= 2).
        batch_size: points per ``sample`` call.
        seed: seed of the draws and of the folds; `None` (default) takes the run's seed (the loop's).
        sample_kwargs: sampling settings of the detector's draws, e.g. ``{"temperature": 0.9}``
            (default ``{}``: the model's own distribution, whatever the loop's settings).

    Raises:
        ValueError: an argument out of range; before generation 0, no held-out split or one too
            small.

    Examples:
        >>> from sclc_lightning.callbacks import DetectorMetrics
        >>> detector = DetectorMetrics(num_samples=1000, every=5)
    """

    headline = "c2st_auc"
    ranges = bounded(folds=Range(minimum=2))

    def __init__(
        self,
        num_samples: int = 1000,
        every: int = 1,
        classifier: str = "mlp",
        folds: int = 5,
        batch_size: int = 10_000,
        seed: int | None = None,
        sample_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_samples, every, batch_size, seed)
        if classifier not in CLASSIFIERS:
            raise ValueError(f"`classifier` must be one of {list(CLASSIFIERS)}, got {classifier!r}.")
        check_arguments(DetectorMetrics, locals())
        self.classifier, self.folds = classifier, int(folds)
        if self.num_samples < 2 * self.folds:
            raise ValueError(
                f"`num_samples` must be at least 2 * `folds` = {2 * self.folds} (each fold needs both classes),"
                f" got {self.num_samples}."
            )
        if sample_kwargs is not None and (
            not isinstance(sample_kwargs, dict) or not all(isinstance(k, str) for k in sample_kwargs)
        ):
            raise ValueError(f"`sample_kwargs` must be a dict of keyword arguments, got {sample_kwargs!r}.")
        for key, setting in (sample_kwargs or {}).items():
            if isinstance(setting, (int, float)) and not isinstance(setting, bool) and not math.isfinite(setting):
                raise ValueError(f"`sample_kwargs[{key!r}]` must be a finite number, got {setting!r}.")
        self.sample_kwargs: dict[str, Any] = dict(sample_kwargs or {})
        self.evaluated_on: int | None = None
        self._reference: Tensor | None = None
        self._labels: Tensor | None = None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse, before generation 0 trains, what this detector cannot evaluate."""
        self._reference, self._labels = held_out(trainer, "DetectorMetrics")
        if len(self._reference) < 2 * self.folds:
            raise ValueError(
                f"DetectorMetrics needs at least 2 * folds = {2 * self.folds} held-out items, the DataModule's"
                f" test split has {len(self._reference)}; give a larger test split or fewer `folds`."
            )
        if not bool(torch.isfinite(self._reference.double()).all()):
            raise ValueError("DetectorMetrics: the held-out items hold non-finite values (NaN or inf).")
        if len(self._reference) < self.num_samples:
            rank_zero_info(
                f"DetectorMetrics: num_samples={self.num_samples}, but the held-out split has"
                f" {len(self._reference)} items: each class uses {len(self._reference)}."
            )
        loop = find_loop(trainer)
        if loop is not None and self.sample_kwargs:  # settings the sampler cannot take: refused now
            from sclc_lightning.sampler import SamplerError, bind_sampler

            try:
                bind_sampler(
                    pl_module,
                    loop.config.sampler,  # type: ignore[attr-defined]
                    condition_field=loop.config.condition_field,  # type: ignore[attr-defined]
                    extra=self.sample_kwargs,
                )
            except SamplerError as err:
                raise ValueError(f"DetectorMetrics(sample_kwargs={self.sample_kwargs!r}): {err}") from None

    @override
    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        if self._reference is None:
            self._reference, self._labels = held_out(trainer, "DetectorMetrics")
        samples = self.draw(
            trainer,
            pl_module,
            generation,
            self.labels_to_ask(trainer, self._labels),
            sample_kwargs=self.sample_kwargs,
        )
        self.evaluated_on = min(len(samples), len(self._reference))
        auc = c2st_auc(
            samples, self._reference, classifier=self.classifier, folds=self.folds, seed=self.draw_seed(trainer)
        )
        return {"c2st_auc": auc}
