"""The package as a core install sees it: run by ``tests/test_extras.py`` in a fresh interpreter.

``python without_extras.py HIDDEN.json WORKDIR`` hides the import names and distributions that
``HIDDEN.json`` lists (``{"modules": [...], "distributions": [...]}``: the extras' packages) from
every import finder and from ``importlib.metadata``, as if they were not installed; then imports
every module of ``sclc_lightning``, builds every corrector, model, datamodule and metric with its
defaults, exercises the features that need an extra, runs ``sclc fit`` on a small recipe with W&B
logging, and writes ``WORKDIR/outcomes.json``: what failed to import, and each outcome (``"ok"``
or ``"ExceptionType: message"``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class _Hiding:
    """Wraps a ``sys.meta_path`` finder: hidden modules are not found, hidden distributions have
    no metadata, as when neither is installed (``find_spec`` returns ``None`` rather than raising,
    so that libraries probing for them see them absent, not broken)."""

    def __init__(self, finder: Any, modules: set[str], distributions: set[str]) -> None:
        self.finder, self.modules, self.distributions = finder, modules, distributions

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        find = getattr(self.finder, "find_spec", None)
        if name.partition(".")[0] in self.modules or find is None:
            return None
        return find(name, path, target)

    def find_distributions(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        find = getattr(self.finder, "find_distributions", None)
        for dist in find(*args, **kwargs) if find is not None else ():
            if _canonical(dist.metadata["Name"] or "") not in self.distributions:
                yield dist

    def invalidate_caches(self) -> None:
        if hasattr(self.finder, "invalidate_caches"):
            self.finder.invalidate_caches()


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _outcome(build: Callable[[], Any]) -> str:
    try:
        build()
    except BaseException as err:  # every outcome is reported, SystemExit included
        return f"{type(err).__name__}: {err}"
    return "ok"


def _build_each(package: Any, outcomes: dict[str, str]) -> None:
    """Build each public class of ``package`` with its defaults, under its name (a class that
    cannot even be imported: that outcome)."""
    for name in (name for name in package.__all__ if name[0].isupper()):
        try:
            value = getattr(package, name)
        except BaseException as err:  # every outcome is reported
            outcomes[name] = f"{type(err).__name__}: {err}"
            continue
        if isinstance(value, type):
            outcomes[name] = _outcome(value)


def main(hidden_file: str, workdir: str) -> None:
    hidden = json.loads(Path(hidden_file).read_text())
    modules, distributions = set(hidden["modules"]), {_canonical(d) for d in hidden["distributions"]}
    already = sorted(name for name in sys.modules if name.partition(".")[0] in modules)
    if already:
        raise SystemExit(f"imported before they could be hidden: {already}")
    sys.meta_path[:] = [_Hiding(finder, modules, distributions) for finder in sys.meta_path]
    importlib.invalidate_caches()

    import pkgutil

    import sclc_lightning

    failures = {}
    for info in pkgutil.walk_packages(sclc_lightning.__path__, "sclc_lightning."):
        outcome = _outcome(lambda: importlib.import_module(info.name))  # noqa: B023 - called at once
        if outcome != "ok":
            failures[info.name] = outcome

    import torch

    from sclc_lightning import SelfConsumingLoop
    from sclc_lightning.correctors import KMeansCorrector, available_correctors, make_corrector
    from sclc_lightning.datasets import images, molecules, motion, text, toy
    from sclc_lightning.items import ItemCodec, RealData

    outcomes: dict[str, str] = {}
    outcomes["loop"] = _outcome(lambda: SelfConsumingLoop(synthetic_fraction=0.5, generations=1))
    for name in available_correctors():
        outcomes[f"correctors {name}"] = _outcome(lambda: make_corrector(name))  # noqa: B023
    import sclc_lightning.callbacks as callbacks
    import sclc_lightning.metrics as metrics
    import sclc_lightning.models as models

    for package in (models, metrics, callbacks, toy, images, motion, text, molecules):
        _build_each(package, outcomes)
    # the classes that need an argument
    outcomes["CausalLM"] = _outcome(lambda: models.CausalLM(config={"model_type": "gpt2"}))
    outcomes["TokenizedTextDataModule"] = _outcome(lambda: text.TokenizedTextDataModule("gpt2"))
    from sclc_lightning.metrics.image_metrics import ImageMetrics

    outcomes["ImageMetrics"] = _outcome(lambda: ImageMetrics(num_classes=10))

    from sclc_lightning.physics.sim import Biped

    outcomes["Biped"] = _outcome(Biped)
    empty = Path(workdir) / "empty.msgpack"
    empty.touch()
    outcomes["read_geom"] = _outcome(lambda: next(molecules.read_geom(empty)))
    tokens = torch.randint(5, (6, 4), generator=torch.Generator().manual_seed(0))
    points = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    for label, data in (("tokens", tokens), ("points", points)):
        real = RealData(list(data), ItemCodec.infer(data[0]))  # type: ignore[arg-type]  # a list is a dataset
        outcomes[f"kmeans on {label}"] = _outcome(lambda: KMeansCorrector().check_items(real))  # noqa: B023

    from sclc_lightning.cli import main as sclc

    recipes = Path(sclc_lightning.__file__).parents[1] / "recipes"
    grid = ["grid", "--config", str(recipes / "gaussian_toy.yaml"), "--launcher", "submitit-local"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        outcomes["sclc grid --launcher submitit-local"] = _outcome(
            lambda: sclc([*grid, "--out", str(Path(workdir) / "grid")])
        )
    outcomes["sclc grid stderr"] = stderr.getvalue()
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    run = Path(workdir) / "run"
    fit = ["fit", "--config", str(recipes / "gaussian_toy.yaml"), "--run_dir", str(run), "--loop.generations", "1"]
    outcomes["sclc fit"] = f"returned {sclc(fit)}"
    outcomes["sclc fit wrote"] = sorted(p.name for p in run.iterdir() if p.name in ("metrics.csv", "wandb"))  # type: ignore[assignment]
    result = {"import_failures": failures, "outcomes": outcomes}
    (Path(workdir) / "outcomes.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
