"""A physics simulator in the loop: the planar biped body, its motions and their physics checks.

Only numpy and MuJoCo are imported here, so simulation workers start fast.
"""

from sclc_lightning.physics.sim import (
    FPS,
    JOINT_NAMES,
    MOTION_TYPES,
    Biped,
    generate_motions,
    physics_violations,
    track_motions,
)

__all__ = [
    "FPS",
    "JOINT_NAMES",
    "MOTION_TYPES",
    "Biped",
    "generate_motions",
    "physics_violations",
    "track_motions",
]
