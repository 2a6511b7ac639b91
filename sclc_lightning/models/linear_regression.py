r"""Linear regression refitted on its own targets (Gerstgrasser et al. 2024; Dey & Donoho).

The design :math:`X` stays real; the targets are what the model generates:
:math:`y = x^\top \hat w + \sigma \varepsilon` with the known noise level :math:`\sigma`. Each
generation refits :math:`\hat w = X^+ Y` on its training set by least squares. Under ``replace``
the test error grows linearly in the generation; under ``accumulate`` it stays bounded (closed
forms in :func:`sclc_lightning.theory.linear_regression_error`).

Items are ``(x, y)`` pairs: ``x`` of shape ``(dim,)`` (the condition, ``condition_field: 0``)
and ``y`` of shape ``(1,)`` (the generated field, ``data_field: 1``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sclc_lightning._checks import (
    COUNT,
    NON_NEGATIVE,
    check_arguments,
    check_numbers,
    plain_numbers,
)
from sclc_lightning._trainer import attached_datamodule
from sclc_lightning.mixing.weighting import split_weights
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models.exact_fit import ExactFitModule

__all__ = ["LinearRegressionModel"]


@plain_numbers
class LinearRegressionModel(ExactFitModule):
    r"""Least squares :math:`\hat w = X^+ Y` (no intercept) and Gaussian targets around it.

    Args:
        dim: the dimension :math:`d` of ``x``.
        noise_std: :math:`\sigma`, the noise of generated targets (the theory's known noise
            level; the real data's noise in the recipes).
        reference_weights: a vector to follow the fit against (e.g. a verifier's own
            :math:`\theta_c`): logs ``reference_distance``, :math:`\|\hat w - \theta_c\|^2`.

    After each generation it logs ``test_error``, :math:`\|\hat w - w^*\|^2` (the expected
    squared error of a prediction at an isotropic test point, above the noise floor), when the
    DataModule says :math:`w^*` (``true_weights()``), and ``weight_norm``, :math:`\|\hat w\|`.
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted fit.
    reads_item_weights = True

    #: The theory ``sclc report`` draws over this model's runs: a registered
    #: :class:`~sclc_lightning.report.Theory` (see :mod:`sclc_lightning.report.closed_forms`).
    theory: str | None = "linear_regression"

    def __init__(self, dim: int = 8, noise_std: float = 1.0, reference_weights: list[float] | None = None) -> None:
        super().__init__()
        check_arguments(LinearRegressionModel.__init__, locals(), dim=COUNT, noise_std=NON_NEGATIVE)
        if reference_weights is not None:
            array = check_numbers("reference_weights", reference_weights)
            if array.ndim != 1:
                raise ValueError(
                    f"`reference_weights` must be a list of `dim` = {dim} numbers, got {reference_weights!r}."
                )
            reference_weights = array.tolist()
        if reference_weights is not None and len(reference_weights) != dim:
            raise ValueError(f"`reference_weights` must have `dim` = {dim} values, got {len(reference_weights)}.")
        self.reference = None if reference_weights is None else torch.tensor(reference_weights, dtype=torch.float64)
        self.save_hyperparameters()
        self.dim, self.noise_std = dim, noise_std
        self.weights = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64), requires_grad=False)

    @staticmethod
    def _pair(batch: Any) -> tuple[Tensor, Tensor]:
        if isinstance(batch, dict) or not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError("LinearRegressionModel trains on (x, y) pairs.")
        x, y = batch
        return x.double().flatten(1), y.double().reshape(x.shape[0], -1)[:, 0]

    def batch_statistics(self, batch: Any) -> list[Tensor]:
        batch, weights = split_weights(batch)
        x, y = self._pair(batch)
        if weights is None:
            return [x.T @ x, x.T @ y]
        weighted = x * weights.double().to(x.device)[:, None]  # weighted least squares: XᵀWX, XᵀWy
        return [weighted.T @ x, weighted.T @ y]

    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        gram, moment = statistics
        # pinv(XᵀX) Xᵀy = X⁺y, also for a rank-deficient design.
        self.weights.copy_(torch.linalg.pinv(gram, hermitian=True) @ moment)
        metrics = {"weight_norm": float(self.weights.norm())}
        true = self.true_weights()
        if true is not None:
            metrics["test_error"] = float((self.weights - true).pow(2).sum())
        if self.reference is not None:
            metrics["reference_distance"] = float((self.weights - self.reference.to(self.weights)).pow(2).sum())
        return metrics

    def true_weights(self) -> Tensor | None:
        """:math:`w^*` from the DataModule's ``true_weights()``, if it has one."""
        datamodule = attached_datamodule(self)
        if datamodule is None or not hasattr(datamodule, "true_weights"):
            return None
        weights: Tensor = datamodule.true_weights()
        return weights.to(self.weights)

    def predict(self, x: Tensor) -> Tensor:
        r""":math:`x^\top \hat w`, shape ``(len(x),)``."""
        return x.double().flatten(1) @ self.weights

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Targets :math:`x^\top \hat w + \sigma\varepsilon` for the ``num_samples`` inputs in
        ``conditions``, shape ``(num_samples, 1)``, in float32 like the real targets;
        ``temperature`` :math:`\tau` scales the noise (:math:`\tau\sigma\varepsilon`)."""
        tau = check_temperature(temperature, type(self).__name__)
        if not isinstance(conditions, Tensor) or conditions.shape[0] != num_samples:
            raise ValueError(
                "LinearRegressionModel.sample needs the inputs x as `conditions` (set the loop's"
                " `condition_field: 0` and `data_field: 1`)."
            )
        noise = torch.randn(num_samples, generator=generator, dtype=torch.float64, device=conditions.device)
        return (self.predict(conditions) + tau * self.noise_std * noise).float().unsqueeze(1)
