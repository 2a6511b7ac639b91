r"""``sclc report RUN_OR_GRID_DIR ... --out DIR``: paper-style figures of a loop's metrics.

Every run directory (a ``metrics.csv`` beside the run's ``config.yaml`` or its synthetic data's
``manifest.json``) found under the given folders is read. The loop's settings (λ, mode and its
settings, corrector and all its settings, seed, ...) are those the run recorded in its manifest,
whether ``sclc fit`` or a Python script drove it; the other sections of ``config.yaml`` (model,
data, trainer) complete them (:mod:`~sclc_lightning.report.reading`). Runs that differ only by seed
are grouped, labelled by (λ, γ, mode, corrector) and the other settings that differ between
groups, and drawn as their mean with a ±1 standard-deviation band. For each metric a PNG of the
metric against the generation is written, one line per group, its legend naming the method as a
paper would (``"kmeans, γ = 1; λ = 0.5, augment (3 seeds)"``, :mod:`~sclc_lightning.report.figures`).

Where the theory has a closed form it is drawn dashed over the measured curve. Which one is
chosen by what the run's model and mixing policy declare (:mod:`~sclc_lightning.report.theory`):
the model class names a registered theory in its ``theory`` attribute (``theory = "gaussian"``),
and the policy's plans say what each generation trains on. The built-in theories
(:mod:`~sclc_lightning.report.closed_forms`): ``sigma`` of an exact Gaussian refitted on its own
samples only gets :math:`\sigma_0\,\alpha(n)^t` (Bertrand et al. Prop. 1); ``test_error`` of
linear regression on its own targets (λ = 1, replacing or accumulating) gets
:func:`~sclc_lightning.theory.linear_regression_error`. A group that augments the real data with
λ at or above the stability bound :math:`(1+\gamma)/(2+\gamma)` of Gillman et al. Thm. 4.3 says
so in the legend (:func:`stability_note`).

``report.html`` holds every figure and each run's sample pictures across generations, embedded so
the page is self-contained (:mod:`~sclc_lightning.report.page`). ``summary.csv`` gives, per group
and metric, the mean and standard deviation over seeds of the last generation's value and of the
second half's average (:func:`write_summary`).
"""

from sclc_lightning.report.closed_forms import stability_note  # its module registers the built-in theories
from sclc_lightning.report.figures import figure_name
from sclc_lightning.report.main import main
from sclc_lightning.report.page import write_report
from sclc_lightning.report.reading import find_runs
from sclc_lightning.report.runs import ReportError, ReportWarning, Run, group_runs
from sclc_lightning.report.summary import spreadsheet_safe, write_summary
from sclc_lightning.report.theory import (
    Theory,
    TheoryCurve,
    TheoryGroup,
    available_theories,
    register_theory,
)

__all__ = [
    "ReportError",
    "ReportWarning",
    "Run",
    "Theory",
    "TheoryCurve",
    "TheoryGroup",
    "available_theories",
    "figure_name",
    "find_runs",
    "group_runs",
    "main",
    "register_theory",
    "spreadsheet_safe",
    "stability_note",
    "write_report",
    "write_summary",
]
