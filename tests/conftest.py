import os
import sys
import warnings

# helpers.py and shapes.py; appended, so that a test folder (tests/datasets) never hides a library
sys.path.append(os.path.dirname(__file__))
# W&B stays off in tests unless a test turns it on (offline) itself.
os.environ["WANDB_MODE"] = "disabled"
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_globals() -> object:
    """What one test sets globally is not seen by the next: the run's seed (``seed_everything``
    writes ``PL_GLOBAL_SEED``) and what it registers (correctors, policies, schedules, scores).
    Each test starts with the run's seed 0, as after ``seed_everything(0)``, so that a test that
    sets none is repeatable; the tests of drawn seeds remove it themselves."""
    from sclc_lightning._registry import Registry

    seed = os.environ.get("PL_GLOBAL_SEED")
    os.environ["PL_GLOBAL_SEED"] = "0"
    registries = [(registry, registry.snapshot()) for registry in Registry.instances]
    yield
    for registry, snapshot in registries:
        registry.restore(snapshot)
    if seed is None:
        os.environ.pop("PL_GLOBAL_SEED", None)
    else:
        os.environ["PL_GLOBAL_SEED"] = seed
