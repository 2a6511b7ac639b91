"""Tasks and suites of ``sclc bench``.

A task is a collapse setting with a claim and no corrector of its own: a recipe (and the layers
that size it for the bench), the held-out metric that measures it and its direction, the
generation at which it is read, the theory curve where one exists, what it offers the methods
(``traits``: continuous data, a model with a ``log_prob``, ...) and the task-specific parts of
methods that need them (the number of KMeans clusters, the real subset of ``fresh``, Neon's
weight).

A task's definition is versioned by its :meth:`Task.digest`: the content of its recipe files, its
metric, direction and generation and the seeds policy. Every result carries it, and results are
compared only where the digests agree.

Recipes are read from the repository's ``recipes/`` folder (``recipes=`` or ``SCLC_RECIPES``
names another).

Examples:
    >>> [task.name for task in suite_tasks("quick")][:3]
    ['gaussian_prop1', 'sampling_bias', 'linear_regression']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["SUITES", "TASKS", "Task", "recipes_folder", "suite_tasks"]

#: The version of a task's digest's layout (not of a task: a task's own changes change its digest).
DIGEST_FORMAT = 1
#: How the seeds are used, part of every digest: a point's seed sets both of these.
SEEDS_POLICY = "seed_everything = loop.seed = seed; the data follow the run's seed where the recipe lets them"

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class Task:
    """A collapse setting of the bench.

    Attributes:
        name: how the card names it.
        recipe: the recipe files, later ones layered over earlier ones, relative to the recipes
            folder (or absolute).
        metric: the ``metrics.csv`` column that measures it, held out from training.
        direction: ``"lower"`` or ``"higher"``: which way the metric is better.
        generation: the generation whose value is read.
        claim: the claim it measures, with its source.
        traits: what it offers methods: ``continuous`` (real vectors) or ``tokens``,
            ``unconditional`` or ``conditional`` (a field generated for a given one), ``labels``
            (the condition is a class label), ``log_prob`` (its model has a ``log_prob``).
        parts: the task-specific settings of methods that need them, by method name.
        theory: the registered theory curve of its model, where one exists.
        suites: the suites it belongs to.
        unfit: the built-in methods that cannot run at the task's size, by name, with the reason
            (the card gives it where the method is skipped).
    """

    name: str
    recipe: tuple[str, ...]
    metric: str
    direction: Direction
    generation: int
    claim: str
    traits: frozenset[str] = field(default_factory=frozenset)
    parts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    theory: str | None = None
    suites: tuple[str, ...] = ()
    unfit: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"Task {self.name!r}: `direction` must be 'lower' or 'higher', got {self.direction!r}.")
        if isinstance(self.generation, bool) or not isinstance(self.generation, int) or self.generation < 0:
            raise ValueError(f"Task {self.name!r}: `generation` must be an integer >= 0, got {self.generation!r}.")

    def configs(self, recipes: str | Path | None = None) -> list[str]:
        """The recipe files' paths.

        Raises:
            FileNotFoundError: naming the file missing and where it was looked for.
        """
        folder = recipes_folder(recipes)
        paths = [Path(r) if Path(r).is_absolute() else folder / r for r in self.recipe]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(
                    f"Task {self.name!r}: recipe {path} is missing (recipes folder {folder}; give another with"
                    " `recipes=`, --recipes or SCLC_RECIPES)."
                )
        return [str(p) for p in paths]

    def digest(self, recipes: str | Path | None = None) -> str:
        """``sha256:<hex>`` of what defines the task: its recipe files' bytes in order, its metric,
        direction, generation and the seeds policy."""
        content = {
            "format": DIGEST_FORMAT,
            "recipe": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in self.configs(recipes)],
            "metric": self.metric,
            "direction": self.direction,
            "generation": self.generation,
            "seeds": SEEDS_POLICY,
        }
        return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def describe(self, recipes: str | Path | None = None) -> dict[str, Any]:
        """What the card says of the task (methods' results aside)."""
        return {
            "claim": self.claim,
            "recipe": list(self.recipe),
            "digest": self.digest(recipes),
            "metric": self.metric,
            "direction": self.direction,
            "generation": self.generation,
            "theory": self.theory,
            "traits": sorted(self.traits),
        }


def recipes_folder(recipes: str | Path | None = None) -> Path:
    """``recipes``, else ``$SCLC_RECIPES``, else the ``recipes/`` folder beside the package (a
    source checkout), else ``./recipes``."""
    if recipes is not None:
        return Path(recipes)
    if os.environ.get("SCLC_RECIPES"):
        return Path(os.environ["SCLC_RECIPES"])
    beside = Path(__file__).resolve().parents[2] / "recipes"
    return beside if beside.is_dir() else Path("recipes")


_CONTINUOUS = frozenset({"continuous", "unconditional"})
_GAUSSIAN = frozenset({"continuous", "unconditional", "log_prob"})

#: The built-in tasks.
TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "gaussian_prop1",
            ("gaussian_collapse.yaml",),
            "w2",
            "lower",
            50,
            "Bertrand et al. 2024, Prop. 1: a Gaussian refitted on its own n = 10 samples collapses (W2 to the"
            " data's distribution grows as its spread shrinks)",
            _GAUSSIAN,
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 10}},
                "fresh": {"mode_kwargs": {"real_per_generation": 5}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 4}},
            },
            theory="gaussian",
            suites=("quick",),
        ),
        Task(
            "sampling_bias",
            ("sampling_bias_gaussian.yaml",),
            "w2",
            "lower",
            30,
            "Alemohammad et al. 2024 (ICLR): a fully synthetic loop sampled with a bias (temperature 0.9) loses"
            " diversity faster",
            _GAUSSIAN,
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 10}},
                "fresh": {"mode_kwargs": {"real_per_generation": 5}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 4}},
                # w = 1/tau^2 for the variance (recipes/neon_gaussian.yaml); the sampler's own bias
                "neon": {
                    "model_corrector": "neon",
                    "model_corrector_kwargs": {"weight": 1.0 / 0.81, "num_samples": 10000},
                },
            },
            theory="gaussian",
            suites=("quick",),
        ),
        Task(
            "linear_regression",
            ("linear_regression.yaml", "bench/linear_regression.yaml"),
            "test_error",
            "lower",
            50,
            "Gerstgrasser et al. 2024 / Dey & Donoho: least squares refitted on its own targets; the test error"
            " grows linearly under replace",
            frozenset({"continuous", "conditional"}),
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 64}},
                "fresh": {"mode_kwargs": {"real_per_generation": 32}},
            },
            theory="linear_regression",
            suites=("quick",),
        ),
        Task(
            "gmm_em",
            ("gmm_em.yaml", "bench/gmm_em.yaml"),
            "kl_to_data",
            "lower",
            50,
            "Shumailov et al. 2024 (Nature): a two-component GMM refitted by EM on its own samples has visibly"
            " changed by generation 50",
            _GAUSSIAN,
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 1000}},
                "fresh": {"mode_kwargs": {"real_per_generation": 500}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 16}},
            },
            suites=("quick",),
        ),
        Task(
            "eight_gaussians_ddpm",
            ("eight_gaussians_ddpm.yaml", "bench/eight_gaussians_ddpm.yaml"),
            "mmd",
            "lower",
            5,
            "Bertrand et al. 2024, Fig. 1: a DDPM on eight Gaussians retrained on its own samples drifts from the data",
            _CONTINUOUS,
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 2000}},
                "fresh": {"mode_kwargs": {"real_per_generation": 1000}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 32}},
            },
            suites=("quick",),
        ),
        Task(
            "two_moons_cfm",
            ("two_moons_cfm.yaml", "bench/two_moons_cfm.yaml"),
            "mmd",
            "lower",
            5,
            "Bertrand et al. 2024, Fig. 2: flow matching on two moons retrained on its own samples drifts",
            _CONTINUOUS,
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 1000}},
                "fresh": {"mode_kwargs": {"real_per_generation": 500}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 32}},
            },
            suites=("quick",),
        ),
        Task(
            "lm_pretrain",
            ("lm_pretrain.yaml", "bench/lm_pretrain.yaml"),
            "test_cross_entropy",
            "lower",
            3,
            "Gerstgrasser et al. 2024, language models: the validation cross-entropy on real text rises under replace",
            frozenset({"tokens", "conditional"}),
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 512}},
                "fresh": {"mode_kwargs": {"real_per_generation": 256}},
            },
            suites=("quick",),
        ),
        Task(
            "digits_kmeans",
            ("digits_ddpm.yaml", "bench/digits_ddpm.yaml"),
            "fid",
            "lower",
            3,
            "Gillman et al. 2024: a class-conditional DDPM on 8x8 digits retrained with lambda = 0.5 of its own"
            " samples degrades (domain FID); KMeans projection per digit corrects it",
            frozenset({"continuous", "conditional", "labels"}),
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 719}},
                "fresh": {"mode_kwargs": {"real_per_generation": 719}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 16}},
            },
            suites=("standard",),
        ),
        Task(
            "vae",
            ("vae_replace_accumulate.yaml", "small/vae_replace_accumulate.yaml", "bench/vae_replace_accumulate.yaml"),
            "test_nelbo",
            "lower",
            2,
            "Shumailov et al. 2024 / Gerstgrasser et al. 2024: a VAE trained on its own samples; the held-out"
            " negative ELBO degrades under replace",
            frozenset({"continuous", "unconditional"}),
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 1437}},
                "fresh": {"mode_kwargs": {"real_per_generation": 719}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 16, "per_class": False}},
            },
            suites=("standard",),
        ),
        Task(
            "conformers",
            ("conformer_diffusion.yaml", "small/conformer_diffusion.yaml", "bench/conformer_diffusion.yaml"),
            "test_loss",
            "lower",
            4,
            "Gerstgrasser et al. 2024: an equivariant diffusion model of conformers trained on its own; the"
            " held-out variational bound rises under replace",
            frozenset({"continuous", "conditional"}),
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 120}},
                "fresh": {"mode_kwargs": {"real_per_generation": 60}},
            },
            suites=("standard",),
        ),
        Task(
            "motion",
            ("motion_physics.yaml", "small/motion_physics.yaml", "bench/motion_physics.yaml"),
            "fid",
            "lower",
            5,
            "Gillman et al. 2024, section 6.3: a motion diffusion model retrained with lambda = 0.5 of its own"
            " motions degrades (motion FID); physics correction helps",
            frozenset({"continuous", "conditional", "labels"}),
            {
                "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 64}},
                "fresh": {"mode_kwargs": {"real_per_generation": 32}},
                "kmeans": {"corrector_kwargs": {"num_clusters": 4}},
            },
            suites=("standard",),
        ),
    )
}
_IMAGES = frozenset({"continuous", "unconditional"})
_HUNGARIAN = "the Hungarian algorithm is O(m^3) for the m = {m} synthetic points of a generation at this size"
_NO_KMEANS = "the sources define no KMeans correction at this size; give one with --method and its num_clusters"


def _bertrand(name: str, recipe: str, data: str, n: int) -> Task:
    """A task of Bertrand et al. (2024) §5: lambda = 1, the strongest setting of their grid."""
    return Task(
        name,
        (recipe, f"bench/paper/{recipe}"),
        "fid",
        "lower",
        5,
        f"Bertrand et al. 2024, §5 / Fig. 3: {data} retrained with lambda = 1 of its own samples (n = {n:,})"
        " the FID against the training set grows generation after generation (stable only for lambda <= 0.1)",
        _IMAGES,
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": n}},
            "fresh": {"mode_kwargs": {"real_per_generation": n // 2}},
        },
        suites=("paper",),
        unfit={"ot_1": _HUNGARIAN.format(m=f"{n:,}"), "ot_inf": _HUNGARIAN.format(m=f"{n:,}"), "kmeans": _NO_KMEANS},
    )


#: The ``paper`` suite: the GPU-size recipes, for a cluster (docs/bench.md gives their cost).
PAPER_TASKS = (
    Task(
        "mnist_kmeans",
        ("mnist_ddpm.yaml", "bench/paper/mnist_ddpm.yaml"),
        "fid",
        "lower",
        20,
        "Gillman et al. 2024 (the authors' MNIST experiment): a class-conditional DDPM retrained with lambda = 0.5"
        " of its own samples degrades (FID in a digit classifier's features); KMeans projection corrects it",
        frozenset({"continuous", "conditional", "labels"}),
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 4000}},
            "fresh": {"mode_kwargs": {"real_per_generation": 2000}},
            "kmeans": {"corrector_kwargs": {"num_clusters": 16}},
        },
        suites=("paper",),
    ),
    _bertrand("cifar10_ddpm", "cifar10_ddpm.yaml", "a DDPM on CIFAR-10", 50_000),
    _bertrand("cifar10_edm", "cifar10_edm.yaml", "EDM on CIFAR-10", 50_000),
    _bertrand("ffhq64_edm", "ffhq64_edm.yaml", "EDM on FFHQ-64", 70_000),
    Task(
        "vae_celeba",
        ("vae_replace_accumulate.yaml", "vae_celeba.yaml", "bench/paper/vae_celeba.yaml"),
        "test_nelbo",
        "lower",
        10,
        "Gerstgrasser et al. 2024: a VAE on CelebA trained on its own samples; the held-out negative ELBO"
        " degrades under replace",
        _IMAGES,
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 192_000}},
            "fresh": {"mode_kwargs": {"real_per_generation": 96_000}},
        },
        suites=("paper",),
        unfit={"ot_1": _HUNGARIAN.format(m="192,000"), "ot_inf": _HUNGARIAN.format(m="192,000"), "kmeans": _NO_KMEANS},
    ),
    Task(
        "lm_finetune_opt125m",
        ("lm_finetune.yaml", "lm_finetune_opt125m.yaml", "bench/paper/lm_finetune_opt125m.yaml"),
        "test_perplexity",
        "lower",
        10,
        "Shumailov et al. 2024 (Nature): OPT-125m fine-tuned on its own wikitext-2 continuations; the perplexity"
        " of the real test blocks rises when no original data is kept",
        frozenset({"tokens", "conditional"}),
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 18_800}},
            "fresh": {"mode_kwargs": {"real_per_generation": 9_400}},
        },
        suites=("paper",),
    ),
    Task(
        "lm_tinystories",
        ("lm_pretrain.yaml", "lm_pretrain_tinystories.yaml", "bench/paper/lm_pretrain_tinystories.yaml"),
        "test_cross_entropy",
        "lower",
        5,
        "Gerstgrasser et al. 2024: GPT-2-size transformers pretrained on TinyStories, each on the previous one's"
        " stories; the validation cross-entropy rises under replace",
        frozenset({"tokens", "conditional"}),
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 1_800_000}},
            "fresh": {"mode_kwargs": {"real_per_generation": 900_000}},
        },
        suites=("paper",),
    ),
    Task(
        "conformers_paper",
        ("conformer_diffusion.yaml", "bench/paper/conformer_diffusion.yaml"),
        "test_loss",
        "lower",
        10,
        "Gerstgrasser et al. 2024: an equivariant conformer diffusion model (the GPU-size EGNN) on its own"
        " conformers; the held-out variational bound rises under replace",
        frozenset({"continuous", "conditional"}),
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 1200}},
            "fresh": {"mode_kwargs": {"real_per_generation": 600}},
        },
        suites=("paper",),
    ),
    Task(
        "motion_paper",
        ("motion_physics.yaml", "bench/paper/motion_physics.yaml"),
        "fid",
        "lower",
        50,
        "Gillman et al. 2024, §6.3 at the paper's size (n = 64, 50 generations): motion diffusion retrained with"
        " lambda = 0.5 of its own motions degrades (motion FID); physics correction helps",
        frozenset({"continuous", "conditional", "labels"}),
        {
            "accumulate_subsample": {"mode_kwargs": {"max_synthetic": 64}},
            "fresh": {"mode_kwargs": {"real_per_generation": 32}},
            "kmeans": {"corrector_kwargs": {"num_clusters": 4}},
        },
        suites=("paper",),
    ),
)
TASKS.update((task.name, task) for task in PAPER_TASKS)

for _task in list(TASKS.values()):  # the standard suite holds the quick one
    if "quick" in _task.suites:
        TASKS[_task.name] = Task(**{**_task.__dict__, "suites": ("quick", "standard")})

#: The suites, each a tuple of task names.
SUITES: dict[str, tuple[str, ...]] = {
    suite: tuple(name for name, task in TASKS.items() if suite in task.suites)
    for suite in ("quick", "standard", "paper")
}


def suite_tasks(suite: str, names: Sequence[str] | None = None) -> list[Task]:
    """The tasks of ``suite`` (``names``: only these, in the suite's order).

    Raises:
        ValueError: an unknown suite, or a name not in it.
    """
    if suite not in SUITES:
        raise ValueError(f"No suite {suite!r}; the suites are {sorted(SUITES)}.")
    tasks = [TASKS[name] for name in SUITES[suite]]
    if names is None:
        return tasks
    unknown = [n for n in names if n not in SUITES[suite]]
    if unknown:
        raise ValueError(f"Suite {suite!r} has no task {unknown}; it has {list(SUITES[suite])}.")
    return [t for t in tasks if t.name in names]
