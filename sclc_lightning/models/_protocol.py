"""The bundled models' ``sample`` methods satisfy the loop's :class:`~sclc_lightning.sampler.Sampler`
protocol: checked by the type checker (mypy reads this module; nothing imports it at run time, and
the run-time check of a module's sampler is :func:`~sclc_lightning.sampler.bind_sampler`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sclc_lightning.models import (
        CausalLM,
        ConformerDiffusion,
        GaussianMixtureModel,
        GaussianModel,
        ImageDDPM,
        ImageEDM,
        ImageVAE,
        LinearRegressionModel,
        MotionDiffusion,
        PointDDPM,
        PointFlowMatching,
    )
    from sclc_lightning.sampler import Sampler

    def _bundled_samplers(
        lm: CausalLM,
        conformers: ConformerDiffusion,
        mixture: GaussianMixtureModel,
        gaussian: GaussianModel,
        ddpm: ImageDDPM,
        edm: ImageEDM,
        vae: ImageVAE,
        regression: LinearRegressionModel,
        motion: MotionDiffusion,
        points: PointDDPM,
        flow: PointFlowMatching,
    ) -> list[Sampler]:
        return [
            lm.sample,
            conformers.sample,
            mixture.sample,
            gaussian.sample,
            ddpm.sample,
            edm.sample,
            vae.sample,
            regression.sample,
            motion.sample,
            points.sample,
            flow.sample,
        ]
