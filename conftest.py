"""pytest set-up shared by the tests and the doctests of the package: each test or doctest sees
the built-in correctors and mixing policies and what it registers itself, never what another
test registered, so that no test depends on the order they run in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _registries_restored() -> Iterator[None]:
    # the modules that make the registries (the packages import them lazily); a snapshot finds
    # each registry's built-ins first
    import sclc_lightning.correctors.base
    import sclc_lightning.correctors.model
    import sclc_lightning.correctors.scores
    import sclc_lightning.mixing.policies
    import sclc_lightning.mixing.schedule
    import sclc_lightning.report.theory  # noqa: F401
    from sclc_lightning._registry import Registry

    saved = [(registry, registry.snapshot()) for registry in Registry.instances]
    yield
    for registry, snapshot in saved:
        registry.restore(snapshot)


@pytest.fixture(autouse=True)
def _run_seed_restored() -> Iterator[None]:
    """``seed_everything`` sets ``PL_GLOBAL_SEED``, which the loop and the DataModules take as the
    run's seed: what one test (or an in-process ``sclc fit``) set must not seed the next one."""
    import os

    saved = os.environ.get("PL_GLOBAL_SEED")
    yield
    if saved is None:
        os.environ.pop("PL_GLOBAL_SEED", None)
    else:
        os.environ["PL_GLOBAL_SEED"] = saved
