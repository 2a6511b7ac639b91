"""pytest set-up shared by the tests and the doctests of the package: each test or doctest sees
the built-in correctors and mixing policies and what it registers itself, never what another
test registered, so that no test depends on the order they run in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

@pytest.fixture(autouse=True)
def _registries_restored() -> Iterator[None]:
    import sclc_lightning.correctors
    import sclc_lightning.mixing  # noqa: F401 - the built-ins register on import
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
