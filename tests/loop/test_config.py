from typing import Any

import pytest

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import CommandCorrector, KMeansCorrector, PhysicsCorrector
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.fingerprint import fingerprint_changes


def test_the_mode_settings_go_in_mode_kwargs_only() -> None:
    """``real_per_generation`` and ``max_synthetic`` were loop arguments before the first release;
    they are now settings of their policies only (README, "Changes")."""
    for argument in ("real_per_generation", "max_synthetic"):
        with pytest.raises(TypeError, match=rf"unexpected keyword argument '{argument}'"):
            SelfConsumingLoop(0.5, 2, **{argument: 5})


def test_policy_instance_and_unknown_arguments() -> None:
    from sclc_lightning.mixing import AccumulatePolicy

    loop = SelfConsumingLoop(0.5, 2, mode=AccumulatePolicy(max_synthetic=3))
    assert loop.fingerprint()["mode_settings"] == {"max_synthetic": 3}
    with pytest.raises(ValueError, match=r"`mode_kwargs` is only used with a registered mixing policy name"):
        SelfConsumingLoop(0.5, 2, mode=AccumulatePolicy(), mode_kwargs={"max_synthetic": 3})
    import inspect

    parameters = inspect.signature(SelfConsumingLoop).parameters.values()
    arguments = {p.name: p.default for p in parameters} | {"synthetic_fraction": 0.5, "generations": 2, "bogus": 1}
    with pytest.raises(TypeError, match=r"unexpected arguments \['bogus'\]"):
        LoopConfig.from_arguments(arguments)


def test_correctors_describe_every_setting_that_decides_the_points() -> None:
    kmeans = KMeansCorrector(strength=2.0, num_clusters=8, per_class=False)
    assert kmeans.describe() == {"name": "kmeans", "strength": 2.0, "num_clusters": 8, "per_class": False, "n_init": 3}
    physics = PhysicsCorrector(num_workers=0, kp=300.0)
    assert physics.describe() == {"name": "physics", "strength": float("inf"), "kp": 300.0, "kd": 25.0, "smooth": 1.0}
    # workers, chunking, timeouts do not change the points: a resume may change them
    assert physics.describe() == PhysicsCorrector(num_workers=3, chunk_size=4, kp=300.0).describe()
    command = CommandCorrector("fix {input} {output}", timeout=5, env={"TOKEN": "secret"})
    described = command.describe()
    assert described["command"] == ["fix", "{input}", "{output}"] and "timeout" not in described
    assert "secret" not in str(described)
    assert described["env"]["TOKEN"] != CommandCorrector("x", env={"TOKEN": "other"}).describe()["env"]["TOKEN"]
    assert CommandCorrector("fix", timeout=1).describe() == CommandCorrector("fix", timeout=99).describe()


def _fingerprint(**changes: Any) -> dict[str, Any]:
    base = {
        "synthetic_fraction": 0.5,
        "mode": "accumulate",
        "mode_settings": {"max_synthetic": None},
        "corrector": {"name": "kmeans", "strength": 1.0, "num_clusters": 16, "per_class": True, "n_init": 3},
        "seed": 0,
        "item": {"container": "tuple", "data_shape": [2]},
    }
    return {**base, **changes}


def test_fingerprint_changes_name_the_old_and_new_values() -> None:
    old = _fingerprint()
    assert fingerprint_changes(old, _fingerprint(), 2) == []
    kmeans8 = {**old["corrector"], "num_clusters": 8}
    assert fingerprint_changes(old, _fingerprint(corrector=kmeans8), 2) == [
        "corrector.num_clusters: checkpoint 16 vs now 8"
    ]
    assert fingerprint_changes(old, _fingerprint(mode_settings={"max_synthetic": 10}), 2) == [
        "mode_settings.max_synthetic: checkpoint None vs now 10"
    ]
    ot = {"name": "optimal_transport", "strength": 1.0, "target_sampler": None}
    (change,) = fingerprint_changes(old, _fingerprint(corrector=ot), 2)
    assert change.startswith("corrector: checkpoint {'name': 'kmeans'") and "now {'name': 'optimal_transport'" in change
    item = {"container": "tuple", "data_shape": [3]}
    assert fingerprint_changes(old, _fingerprint(item=item), 2) == ["item.data_shape: checkpoint [2] vs now [3]"]


def test_format_1_checkpoints_compare_what_they_recorded() -> None:
    # format 1: mode settings at the top level, the corrector as name and strength, no items
    old = {
        "synthetic_fraction": 0.5,
        "mode": "accumulate",
        "corrector": {"name": "kmeans", "strength": 1.0},
        "seed": 0,
        "real_per_generation": None,
        "max_synthetic": 10,
    }
    assert fingerprint_changes(old, _fingerprint(mode_settings={"max_synthetic": 10}), 1) == []
    assert fingerprint_changes(old, _fingerprint(mode_settings={"max_synthetic": 20}), 1) == [
        "mode_settings.max_synthetic: checkpoint 10 vs now 20"
    ]
    stronger = {**_fingerprint()["corrector"], "strength": 2.0}
    assert fingerprint_changes(old, _fingerprint(corrector=stronger, mode_settings={"max_synthetic": 10}), 1) == [
        "corrector.strength: checkpoint 1.0 vs now 2.0"
    ]
