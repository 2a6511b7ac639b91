"""DataModules of the papers' low-dimensional experiments, generated offline from a seed.

Each has a training split (the real data of the loop) and a held-out test split of the same
distribution, for evaluation.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sclc_lightning._checks import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    check_arguments,
    check_numbers,
    is_number,
    plain_numbers,
)
from sclc_lightning.seeding import datamodule_seed

__all__ = [
    "EightGaussiansDataModule",
    "GaussianDataModule",
    "GaussianMixtureDataModule",
    "LaplaceDataModule",
    "LinearRegressionDataModule",
    "PointsDataModule",
    "TwoMoonsDataModule",
    "first_mode_reward",
    "isotropic_mixture_log_prob",
    "standard_normal_2d",
]


def standard_normal_2d(num: int, generator: torch.Generator) -> Tensor:
    r"""``num`` fresh points of :math:`\mathcal N(0, I_2)`: the target distribution itself, for
    the optimal-transport corrector's ``target_sampler`` (Gillman et al. §5 draw the matching
    targets "from the target", not from the :math:`n` training points).

    Examples:
        >>> standard_normal_2d(3, torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
    """
    return torch.randn(num, 2, generator=generator)


class _Rows(Dataset[Tensor]):
    def __init__(self, rows: Tensor):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Tensor:
        return self.rows[index]


@plain_numbers
class PointsDataModule(pl.LightningDataModule):
    """Base of point-cloud DataModules: override :meth:`draw` to produce ``num`` points.

    Args:
        n: size of the real training set.
        n_test: size of the held-out test set.
        batch_size: training batch size.
        seed: the training and test points are drawn from this seed (different streams);
            ``None`` (default) takes the run's seed when the data are set up
            (:func:`~sclc_lightning.seeding.datamodule_seed`: ``seed_everything``'s, which
            ``sclc grid --seeds`` sets, else one drawn for the fit and shared with the loop), so
            that seeds average over datasets as well as over the loop's draws.
    """

    def __init__(self, n: int = 1000, n_test: int = 1000, batch_size: int = 128, seed: int | None = None):
        super().__init__()
        check_arguments(
            PointsDataModule.__init__, locals(), n=COUNT, n_test=NON_NEGATIVE, batch_size=COUNT, seed=NON_NEGATIVE
        )
        self.n, self.n_test, self.batch_size, self.seed = n, n_test, batch_size, seed
        self.train_points: Tensor | None = None
        self.test_points: Tensor | None = None

    def draw(self, num: int, generator: torch.Generator) -> Tensor:
        """``num`` points of the data distribution, shape ``(num, dim)``."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if self.train_points is None:
            seed = datamodule_seed(self)
            self.train_points = self.draw(self.n, torch.Generator().manual_seed(seed))
            self.test_points = self.draw(self.n_test, torch.Generator().manual_seed(seed + 1_000_003))

    def train_dataloader(self) -> DataLoader[Tensor]:
        assert self.train_points is not None
        return DataLoader(_Rows(self.train_points), batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader[Tensor]:
        assert self.test_points is not None
        return DataLoader(_Rows(self.test_points), batch_size=self.batch_size)


@plain_numbers
class GaussianDataModule(PointsDataModule):
    """Points from :math:`N(\\mu, \\Sigma)` in ``dim`` dimensions (Gillman §5: n = 50, 2-D, N(0, I)).

    Args:
        n: size of the real training set.
        dim: dimension.
        mean: a number (the same in every dimension) or one value per dimension.
        std: :math:`\\Sigma = \\mathrm{std}^2 I` when ``cov`` is not given.
        cov: a full ``dim`` x ``dim`` covariance matrix (symmetric positive definite).
    """

    def __init__(
        self,
        n: int = 50,
        dim: int = 2,
        mean: float | list[float] = 0.0,
        std: float = 1.0,
        cov: list[list[float]] | None = None,
        n_test: int = 1000,
        batch_size: int = 50,
        seed: int | None = None,
    ):
        check_arguments(GaussianDataModule.__init__, locals(), dim=COUNT, std=POSITIVE)
        super().__init__(n, n_test, batch_size, seed)
        self.dim, self.std = dim, std
        if is_number(mean):
            self.mean = torch.full((dim,), float(mean))  # type: ignore[arg-type]
        else:
            self.mean = torch.from_numpy(check_numbers("mean", mean)).float()
        self.cov = std**2 * torch.eye(dim) if cov is None else torch.from_numpy(check_numbers("cov", cov)).float()
        if self.mean.shape != (dim,) or self.cov.shape != (dim, dim):
            raise ValueError(
                f"`mean` must have {dim} values and `cov` be {dim}x{dim}, got shapes"
                f" {tuple(self.mean.shape)} and {tuple(self.cov.shape)}."
            )
        if not torch.allclose(self.cov, self.cov.T, rtol=1e-5, atol=1e-8):  # Cholesky reads one triangle
            raise ValueError(f"`cov` must be symmetric positive definite, got {cov!r} (not symmetric).")
        try:
            self._chol = torch.linalg.cholesky(self.cov.double())
        except RuntimeError as err:
            raise ValueError(f"`cov` must be symmetric positive definite, got {cov!r}.") from err

    def draw(self, num: int, generator: torch.Generator) -> Tensor:
        noise = torch.randn(num, self.dim, generator=generator, dtype=torch.float64)
        return (self.mean.double() + noise @ self._chol.T).float()

    def true_distribution(self) -> tuple[Tensor, Tensor]:
        """Mean and covariance of the data distribution."""
        return self.mean.clone(), self.cov.clone()


@plain_numbers
class LaplaceDataModule(PointsDataModule):
    """Points with independent Laplace coordinates: location ``location``, scale ``scale``
    (variance :math:`2b^2`; the default :math:`b = 1/\\sqrt{2}` gives unit variance), the
    non-Gaussian family of Qiao et al. (2026).

    Args:
        n: size of the real training set.
        dim: dimension.
        location: the location (median) of every coordinate.
        scale: the scale :math:`b` of every coordinate.
    """

    def __init__(
        self,
        n: int = 200,
        dim: int = 2,
        location: float = 0.0,
        scale: float = 1 / math.sqrt(2),
        n_test: int = 1000,
        batch_size: int = 200,
        seed: int | None = None,
    ):
        check_arguments(LaplaceDataModule.__init__, locals(), dim=COUNT, scale=POSITIVE)
        super().__init__(n, n_test, batch_size, seed)
        self.dim, self.location, self.scale = dim, float(location), float(scale)

    def draw(self, num: int, generator: torch.Generator) -> Tensor:
        exponential = torch.empty(2, num, self.dim, dtype=torch.float64).exponential_(generator=generator)
        return (self.location + self.scale * (exponential[0] - exponential[1])).float()


@plain_numbers
class EightGaussiansDataModule(PointsDataModule):
    """Eight Gaussians on a circle of radius ``radius`` (Bertrand et al. Fig. 1: n = 10^4)."""

    def __init__(
        self,
        n: int = 10_000,
        radius: float = 2.0,
        std: float = 0.02**0.5,
        n_test: int = 2000,
        batch_size: int = 256,
        seed: int | None = None,
    ):
        check_arguments(EightGaussiansDataModule.__init__, locals(), radius=POSITIVE, std=POSITIVE)
        super().__init__(n, n_test, batch_size, seed)
        self.radius, self.std = radius, std

    @property
    def centres(self) -> Tensor:
        """The eight mode centres, shape ``(8, 2)``."""
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (self.radius * torch.stack([angles.cos(), angles.sin()], 1)).float()

    def draw(self, num: int, generator: torch.Generator) -> Tensor:
        modes = torch.randint(8, (num,), generator=generator)
        return self.centres[modes] + self.std * torch.randn(num, 2, generator=generator)

    def log_prob(self, points: Tensor) -> Tensor:
        """Log-density of the eight Gaussians at ``points`` ``(N, 2)``, shape ``(N,)``, float64 (a
        fitted mixture's ``kl_to_data`` uses it)."""
        stds = torch.full((8,), float(self.std), dtype=torch.float64)
        return isotropic_mixture_log_prob(
            points, self.centres.double(), stds, torch.full((8,), 1 / 8, dtype=torch.float64)
        )


def isotropic_mixture_log_prob(points: Tensor, centres: Tensor, stds: Tensor, weights: Tensor) -> Tensor:
    r"""Log-density of :math:`\sum_k w_k N(\mu_k, s_k^2 I)` at ``points`` ``(N, d)``, shape ``(N,)``,
    float64, from ``centres`` ``(k, d)``, ``stds`` ``(k,)`` and ``weights`` ``(k,)``.

    Examples:
        >>> centre, one = torch.zeros(1, 1), torch.ones(1)
        >>> round(float(isotropic_mixture_log_prob(torch.zeros(1, 1), centre, one, one)), 4)  # -log(2π)/2
        -0.9189
    """
    _check_mixture(points, centres, stds, weights)
    x, centres, stds = points.double(), centres.double(), stds.double()
    dim = centres.shape[1]
    squared = (x[:, None, :] - centres[None]).pow(2).sum(-1)  # (N, k)
    per_component = -0.5 * squared / stds**2 - dim * stds.log() - 0.5 * dim * math.log(2 * math.pi)
    return torch.logsumexp(per_component + weights.double().log(), dim=1)


def _check_mixture(points: Tensor, centres: Tensor, stds: Tensor, weights: Tensor) -> None:
    """Refuses shapes that broadcasting would silently accept, and stds or weights that are not a
    mixture's."""
    for name, value in (("points", points), ("centres", centres), ("stds", stds), ("weights", weights)):
        if not isinstance(value, Tensor) or value.is_complex():
            raise ValueError(f"`{name}` must be a real tensor, got {type(value).__name__}.")
    if centres.dim() != 2 or len(centres) < 1:
        raise ValueError(f"`centres` must have shape (k, d), got {tuple(centres.shape)}.")
    k, dim = centres.shape
    if points.dim() != 2 or points.shape[1] != dim:
        raise ValueError(f"`points` must have shape (N, {dim}) like the centres, got {tuple(points.shape)}.")
    if stds.shape != (k,) or weights.shape != (k,):
        raise ValueError(
            f"`stds` and `weights` must have shape ({k},), one per centre, got {tuple(stds.shape)} and "
            f"{tuple(weights.shape)}."
        )
    if not bool((stds > 0).all()) or not bool(torch.isfinite(stds).all()):
        raise ValueError(f"`stds` must be positive and finite, got {stds.tolist()}.")
    if not bool((weights >= 0).all()) or abs(float(weights.double().sum()) - 1) > 1e-6:
        raise ValueError(f"`weights` must be non-negative and sum to 1, got {weights.tolist()}.")


def first_mode_reward(data: Tensor, conditions: Any = None) -> Tensor:
    r"""A reward favouring the first of the eight Gaussians (the mode at angle 0): the first
    coordinate, :math:`r(x) = x_1`, largest at that mode (the ``curation_mixture`` recipe).

    Examples:
        >>> first_mode_reward(torch.tensor([[2.0, 0.0], [-2.0, 0.0]])).tolist()
        [2.0, -2.0]
    """
    return data.flatten(1)[:, 0].double()


@plain_numbers
class GaussianMixtureDataModule(PointsDataModule):
    r"""Points from a mixture of isotropic Gaussians :math:`\sum_k w_k N(\mu_k, s_k^2 I)`
    (Shumailov et al. 2024, the GMM experiment: two 2-D Gaussians, a thousand points).

    Args:
        means: one centre per component.
        stds: one standard deviation per component.
        weights: the mixture weights (default: equal).
        n: size of the real training set.
        n_test: size of the held-out test set.
        batch_size: training batch size (default: ``n``, one batch per pass, for exact fits).
        seed: the training and test points are drawn from this seed (different streams);
            ``None`` (default): the run's seed.
    """

    def __init__(
        self,
        means: list[list[float]] | None = None,
        stds: list[float] | None = None,
        weights: list[float] | None = None,
        n: int = 1000,
        n_test: int = 2000,
        batch_size: int | None = None,
        seed: int | None = None,
    ):
        check_arguments(GaussianMixtureDataModule.__init__, locals(), n=COUNT, batch_size=COUNT)
        super().__init__(n, n_test, n if batch_size is None else batch_size, seed)
        centres = torch.from_numpy(check_numbers("means", means if means is not None else [[-2.0, 0.0], [2.0, 0.0]]))
        if centres.dim() != 2 or centres.shape[0] < 1 or centres.shape[1] < 1:
            raise ValueError(
                f"`means` must be a list of points (one list of coordinates per component), got {means!r}."
            )
        k = centres.shape[0]
        spread = torch.from_numpy(check_numbers("stds", stds if stds is not None else [0.5] * k))
        mix = torch.from_numpy(check_numbers("weights", weights if weights is not None else [1.0 / k] * k))
        if centres.dim() != 2 or spread.shape != (k,) or mix.shape != (k,):
            raise ValueError(
                f"`means` must be a list of points and `stds`, `weights` one value per component ({k}),"
                f" got shapes {tuple(centres.shape)}, {tuple(spread.shape)}, {tuple(mix.shape)}."
            )
        if (spread <= 0).any() or (mix < 0).any() or not math.isclose(float(mix.sum()), 1.0, rel_tol=1e-6):
            raise ValueError(f"`stds` must be > 0 and `weights` >= 0 summing to 1, got {stds} and {weights}.")
        self.centres, self.stds, self.mix = centres, spread, mix

    def draw(self, num: int, generator: torch.Generator) -> Tensor:
        components = torch.multinomial(self.mix, num, replacement=True, generator=generator)
        noise = torch.randn(num, self.centres.shape[1], generator=generator, dtype=torch.float64)
        return (self.centres[components] + self.stds[components, None] * noise).float()

    def log_prob(self, points: Tensor) -> Tensor:
        """Log-density of the data distribution at ``points`` ``(N, d)``, shape ``(N,)``."""
        return isotropic_mixture_log_prob(points, self.centres, self.stds, self.mix)


@plain_numbers
class TwoMoonsDataModule(PointsDataModule):
    """scikit-learn's two moons (Bertrand et al. Fig. 2: n = 10^3), standardised."""

    def __init__(
        self, n: int = 1000, noise: float = 0.05, n_test: int = 1000, batch_size: int = 128, seed: int | None = None
    ):
        check_arguments(TwoMoonsDataModule.__init__, locals(), noise=NON_NEGATIVE)
        super().__init__(n, n_test, batch_size, seed)
        self.noise = noise

    def draw(self, num: int, generator: torch.Generator) -> Tensor:
        from sklearn.datasets import make_moons

        state = int(torch.randint(2**31 - 1, (1,), generator=generator))
        points, _ = make_moons(num, noise=self.noise, random_state=np.random.RandomState(state))
        # Fixed affine map (not per-draw statistics) so train and test share the distribution.
        return torch.from_numpy((points - np.array([0.5, 0.25])) / np.array([0.87, 0.5])).float()


class _Pairs(Dataset[tuple[Tensor, Tensor]]):
    def __init__(self, x: Tensor, y: Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]


@plain_numbers
class LinearRegressionDataModule(pl.LightningDataModule):
    r"""Pairs ``(x, y)`` with :math:`x \sim N(0, I_d)` and :math:`y = x^\top w^* + \sigma\varepsilon`
    (Gerstgrasser et al. 2024, §3: the design is drawn once and kept; the loop regenerates only
    the targets). :math:`w^* \sim N(0, I_d)` is drawn from the seed.

    Items are ``(x, y)`` tuples, ``x`` of shape ``(dim,)`` and ``y`` of shape ``(1,)``: use the
    loop's ``data_field: 1`` and ``condition_field: 0``.

    Args:
        n: rows of the design (the real training set); the theory needs ``n >= dim + 2``.
        dim: dimension :math:`d` of ``x``.
        noise_std: :math:`\sigma`.
        n_test: size of the held-out test set.
        batch_size: training batch size (default: the whole set in one batch).
        seed: draws the weights, the training and the test data (different streams); ``None``
            (default) takes the run's seed (``seed_everything``, which ``sclc grid --seeds``
            sets), so that seeds average over designs as the theory's expectation does.
        weights: :math:`w^*` itself (``dim`` values) instead of a draw.
    """

    def __init__(
        self,
        n: int = 64,
        dim: int = 8,
        noise_std: float = 1.0,
        n_test: int = 1000,
        batch_size: int | None = None,
        seed: int | None = None,
        weights: list[float] | None = None,
    ):
        super().__init__()
        check_arguments(
            LinearRegressionDataModule.__init__,
            locals(),
            n=COUNT,
            dim=COUNT,
            noise_std=NON_NEGATIVE,
            n_test=NON_NEGATIVE,
            batch_size=COUNT,
            seed=NON_NEGATIVE,
        )
        if weights is not None:
            array = check_numbers("weights", weights)
            if array.ndim != 1:
                raise ValueError(f"`weights` must be a list of `dim` = {dim} numbers, got {weights!r}.")
            weights = array.tolist()
        if weights is not None and len(weights) != dim:
            raise ValueError(f"`weights` must have `dim` = {dim} values, got {len(weights)}.")
        if dim < 1 or n < dim or n_test < 0 or noise_std < 0 or (batch_size is not None and batch_size < 1):
            raise ValueError(
                "Need dim >= 1, n >= dim, n_test >= 0, noise_std >= 0 and batch_size >= 1 (or None);"
                f" got dim={dim}, n={n}, n_test={n_test}, noise_std={noise_std}, batch_size={batch_size}."
            )
        self.n, self.dim, self.noise_std, self.n_test, self.seed = n, dim, noise_std, n_test, seed
        self.batch_size = n if batch_size is None else batch_size
        self._data_seed: int | None = None
        self._weights = None if weights is None else torch.tensor(weights, dtype=torch.float64)
        self.train_pairs: _Pairs | None = None
        self.test_pairs: _Pairs | None = None

    def _draw(self, num: int, generator: torch.Generator) -> _Pairs:
        x = torch.randn(num, self.dim, generator=generator, dtype=torch.float64)
        assert self._weights is not None  # drawn by `_seed`, which `setup` calls first
        y = x @ self._weights + self.noise_std * torch.randn(num, generator=generator, dtype=torch.float64)
        return _Pairs(x.float(), y.float().unsqueeze(1))

    def _seed(self) -> int:
        """The data seed, resolved once (the run's when ``seed`` is ``None``) and the weights drawn from it."""
        if self._data_seed is None:
            self._data_seed = datamodule_seed(self)
        if self._weights is None:
            generator = torch.Generator().manual_seed(self._data_seed)
            self._weights = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        return self._data_seed

    def setup(self, stage: str) -> None:
        if self.train_pairs is None:
            seed = self._seed()
            self.train_pairs = self._draw(self.n, torch.Generator().manual_seed(seed + 1))
            self.test_pairs = self._draw(self.n_test, torch.Generator().manual_seed(seed + 1_000_003))

    def true_weights(self) -> Tensor:
        """:math:`w^*`, shape ``(dim,)``, float64 (drawn from the data seed at the first use)."""
        self._seed()
        assert self._weights is not None
        return self._weights.clone()

    def train_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        assert self.train_pairs is not None
        return DataLoader(self.train_pairs, batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        assert self.test_pairs is not None
        return DataLoader(self.test_pairs, batch_size=max(1, min(self.n_test, 1024)))
