"""Reference LightningModules with a ``sample`` method, used by recipes and the demo."""

from sclc_lightning.models.gaussian import GaussianModel, gaussian_w2

__all__ = ["GaussianModel", "gaussian_w2"]
