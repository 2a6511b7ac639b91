"""Reference LightningModules with a ``sample`` method, used by recipes and the demo."""

from sclc_lightning.models.causal_lm import CausalLM
from sclc_lightning.models.cfm_points import PointFlowMatching
from sclc_lightning.models.ddpm_points import PointDDPM
from sclc_lightning.models.gaussian import GaussianModel, gaussian_w2
from sclc_lightning.models.gaussian_mixture import GaussianMixtureModel
from sclc_lightning.models.image_ddpm import ImageDDPM
from sclc_lightning.models.image_edm import ImageEDM
from sclc_lightning.models.linear_regression import LinearRegressionModel
from sclc_lightning.models.motion_diffusion import MotionDiffusion
from sclc_lightning.models.vae import ImageVAE

__all__ = [
    "CausalLM",
    "GaussianMixtureModel",
    "GaussianModel",
    "ImageDDPM",
    "ImageEDM",
    "ImageVAE",
    "LinearRegressionModel",
    "MotionDiffusion",
    "PointDDPM",
    "PointFlowMatching",
    "gaussian_w2",
]
