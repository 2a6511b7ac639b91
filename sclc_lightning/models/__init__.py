"""Reference LightningModules with a ``sample`` method, used by recipes and the demo.

``ConformerDiffusion`` (torch-geometric) is imported when first used."""

from typing import TYPE_CHECKING

from sclc_lightning._lazy import lazy
from sclc_lightning.models.causal_lm import CausalLM
from sclc_lightning.models.cfm_points import PointFlowMatching
from sclc_lightning.models.ddpm_points import PointDDPM
from sclc_lightning.models.exact_fit import ExactFitModule
from sclc_lightning.models.gaussian import GaussianModel, gaussian_w2
from sclc_lightning.models.gaussian_mixture import GaussianMixtureModel
from sclc_lightning.models.image_ddpm import ImageDDPM
from sclc_lightning.models.image_edm import ImageEDM
from sclc_lightning.models.laplace import LaplaceModel
from sclc_lightning.models.linear_regression import LinearRegressionModel
from sclc_lightning.models.motion_diffusion import MotionDiffusion
from sclc_lightning.models.vae import ImageVAE

if TYPE_CHECKING:
    from sclc_lightning.models.conformer_diffusion import ConformerDiffusion

__all__ = [
    "CausalLM",
    "ConformerDiffusion",
    "ExactFitModule",
    "GaussianMixtureModel",
    "GaussianModel",
    "ImageDDPM",
    "ImageEDM",
    "ImageVAE",
    "LaplaceModel",
    "LinearRegressionModel",
    "MotionDiffusion",
    "PointDDPM",
    "PointFlowMatching",
    "gaussian_w2",
]

__getattr__, __dir__ = lazy(__name__, {"ConformerDiffusion": "sclc_lightning.models.conformer_diffusion"})
