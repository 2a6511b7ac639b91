"""The planar biped in MuJoCo: scripted ground-truth motions, motion tracking, physics checks.

A motion is an array ``(frames, 9)`` of joint positions at :data:`FPS` frames per second, in the
order of :data:`JOINT_NAMES`: the root's horizontal position (metres, 0 at the first frame), its
height offset (metres, 0 = standing on straight legs) and pitch (radians), then hip, knee and
ankle angles of the right and the left leg (radians).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sclc_lightning._extras import require
from sclc_lightning._process import run_chunks

__all__ = [
    "CONTACT_TOLERANCE",
    "FPS",
    "JOINT_NAMES",
    "MOTION_TYPES",
    "Biped",
    "TrackingGains",
    "generate_motions",
    "physics_violations",
    "track_motions",
]

XML = Path(__file__).with_name("planar_biped.xml")
FPS = 20
JOINT_NAMES = ("rootx", "rootz", "rooty", "hip_r", "knee_r", "ankle_r", "hip_l", "knee_l", "ankle_l")
MOTION_TYPES = ("stand", "squat", "march", "kick")
SITES = ("heel_r", "toe_r", "heel_l", "toe_l")
BODIES = ("torso", "thigh_r", "shin_r", "foot_r", "shin_l", "foot_l")
#: Point pairs of :meth:`Biped.skeleton` joined by lines in drawings.
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 3), (1, 6), (6, 7), (7, 8), (8, 9), (9, 7))
#: A contact point closer than this to the floor (metres) is in contact.
CONTACT_TOLERANCE = 0.02
WARMUP_S = 0.5


@dataclass(frozen=True)
class TrackingGains:
    """PD gains of a controller: joint torques ``kp (q* - q) + kd (q̇* - q̇)`` clipped to the
    actuators' limits; the root's residual actuators use ``root_kp``/``root_kd`` (x, z, pitch)
    and are clipped to ``residual`` times their unit force (60 N, 60 N, 150 N·m; the z residual
    is capped at 1, a quarter of the body's weight, so it never holds the body in the air)."""

    kp: float = 400.0
    kd: float = 25.0
    root_kp: tuple[float, float, float] = (400.0, 400.0, 600.0)
    root_kd: tuple[float, float, float] = (40.0, 40.0, 60.0)
    residual: tuple[float, float] = (1.0, 1.0)  # x, pitch


#: The correction's tracking controller: stronger horizontal and pitch residuals keep the replay
#: upright (as UHC's residual force control does), the vertical one stays weak.
TRACKING = TrackingGains(residual=(3.0, 3.0))


class Biped:
    """The MuJoCo model and data of the planar biped (one instance per process)."""

    def __init__(self) -> None:
        mujoco = require("mujoco", "physics", "The MuJoCo biped (sclc_lightning.physics)")

        self.mujoco = mujoco
        self.model = mujoco.MjModel.from_xml_path(str(XML))
        self.data = mujoco.MjData(self.model)
        self.substeps = round(1.0 / (FPS * self.model.opt.timestep))
        self.site_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, s) for s in SITES]
        self.gear = self.model.actuator_gear[:, 0].copy()
        self.limited = self.model.jnt_limited.astype(bool)
        self.low, self.high = self.model.jnt_range[:, 0].copy(), self.model.jnt_range[:, 1].copy()

    # -- kinematics ------------------------------------------------------------------------------
    def contact_points(self, motion: np.ndarray) -> np.ndarray:
        """``(frames, 4, 2)``: x and z of the heel and toe sites of both feet in every frame."""
        out = np.empty((len(motion), len(SITES), 2))
        for frame, qpos in enumerate(motion):
            self.data.qpos[:] = qpos
            self.mujoco.mj_kinematics(self.model, self.data)
            out[frame] = self.data.site_xpos[self.site_ids][:, [0, 2]]
        return out

    def skeleton(self, motion: np.ndarray) -> np.ndarray:
        """``(frames, 10, 2)`` x, z of the neck, hip, and knee, ankle, heel, toe of the right then
        the left leg, for drawing (see :data:`BONES`)."""
        bodies = [self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_BODY, b) for b in BODIES]
        out = np.empty((len(motion), 10, 2))
        for frame, qpos in enumerate(motion):
            self.data.qpos[:] = qpos
            self.mujoco.mj_kinematics(self.model, self.data)
            torso = bodies[0]
            neck = self.data.xpos[torso] + self.data.xmat[torso].reshape(3, 3) @ np.array([0.0, 0.0, 0.2])
            hip = self.data.xpos[bodies[1]]
            sites = self.data.site_xpos[self.site_ids]
            points = [neck, hip]
            for side in (0, 1):
                points += [self.data.xpos[bodies[2 + 2 * side]], self.data.xpos[bodies[3 + 2 * side]]]
                points += [sites[2 * side], sites[2 * side + 1]]
            out[frame] = np.asarray(points)[:, [0, 2]]
        return out

    def _lowest_point(self, qpos: np.ndarray) -> float:
        self.data.qpos[:] = qpos
        self.mujoco.mj_kinematics(self.model, self.data)
        return float(self.data.site_xpos[self.site_ids][:, 2].min())

    # -- control ---------------------------------------------------------------------------------
    def _control(
        self,
        target: np.ndarray,
        target_velocity: np.ndarray,
        gains: TrackingGains,
        root: Sequence[bool],
    ) -> None:
        q, qd = self.data.qpos, self.data.qvel
        force = gains.kp * (target - q) + gains.kd * (target_velocity - qd)
        kp, kd = np.asarray(gains.root_kp), np.asarray(gains.root_kd)
        force[:3] = (kp * (target[:3] - q[:3]) + kd * (target_velocity[:3] - qd[:3])) * np.asarray(root, dtype=float)
        # actuators 0-5 drive joints 3-8, actuators 6-8 are the root residuals
        self.data.ctrl[:6] = np.clip(force[3:] / self.gear[:6], -1.0, 1.0)
        limit = np.array([gains.residual[0], 1.0, gains.residual[1]])
        self.data.ctrl[6:] = np.clip(force[:3] / self.gear[6:], -limit, limit)

    def _start(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.mujoco.mj_resetData(self.model, self.data)
        start = qpos.astype(np.float64).copy()
        lowest = self._lowest_point(start)
        if lowest < 0:  # never start inside the floor
            start[1] -= lowest
        self.data.qpos[:] = start
        self.data.qvel[:] = qvel
        self.mujoco.mj_forward(self.model, self.data)

    def track(self, motion: np.ndarray, gains: TrackingGains = TRACKING) -> np.ndarray:
        """The motion the simulator produces when the tracking controller follows ``motion``.

        The body starts at the first frame (lifted out of the floor if needed) with its finite-
        difference velocity; between frames the targets are interpolated linearly.
        """
        motion = np.asarray(motion, dtype=np.float64)
        frames = len(motion)
        velocity = np.diff(motion, axis=0, prepend=motion[:1]) * FPS
        if frames > 1:
            velocity[0] = velocity[1]
        self._start(motion[0], velocity[0])
        out = np.empty_like(motion)
        out[0] = self.data.qpos
        for frame in range(1, frames):
            for sub in range(self.substeps):
                w = (sub + 1) / self.substeps
                target = (1 - w) * motion[frame - 1] + w * motion[frame]
                self._control(target, velocity[frame], gains, (True, True, True))
                self.mujoco.mj_step(self.model, self.data)
            out[frame] = self.data.qpos
        return out

    def rollout(self, script: Callable[[float], np.ndarray], frames: int, gains: TrackingGains) -> np.ndarray:
        """Record ``frames`` frames of the body driven by joint targets ``script(t)``.

        The root's height is left to gravity and contacts (no residual force on it), its
        horizontal position and pitch get the weak residual balance forces.
        """
        self._start(np.zeros(self.model.nq), np.zeros(self.model.nv))
        dt = self.model.opt.timestep
        warmup = round(WARMUP_S / dt)
        out = np.empty((frames, self.model.nq))
        step = 0
        for frame in range(-1, frames):
            count = warmup if frame < 0 else self.substeps
            for _ in range(count):
                t = max(0.0, (step - warmup) * dt)
                target = np.zeros(self.model.nq)
                target[3:] = script(t)
                velocity = np.zeros(self.model.nv)
                velocity[3:] = (script(t + dt) - target[3:]) / dt
                self._control(target, velocity, gains, (True, False, True))
                self.mujoco.mj_step(self.model, self.data)
                step += 1
            if frame >= 0:
                out[frame] = self.data.qpos
        out[:, 0] -= out[0, 0]
        return out


def _flat(hip: float, knee: float) -> float:
    """The ankle angle that keeps the sole parallel to the floor (upright torso)."""
    return -(hip + knee)


def motion_script(kind: int, rng: np.random.Generator) -> Callable[[float], np.ndarray]:
    """Joint targets ``t -> (6,)`` of motion type ``MOTION_TYPES[kind]`` with random parameters."""
    omega = 2 * math.pi * rng.uniform(0.6, 1.2)
    phase = rng.uniform(0, 2 * math.pi)
    amplitude = rng.uniform(0.6, 1.0)
    bend = rng.uniform(0.0, 0.15)

    def pose(hip_r: float, knee_r: float, hip_l: float, knee_l: float) -> np.ndarray:
        return np.array([hip_r, knee_r, _flat(hip_r, knee_r), hip_l, knee_l, _flat(hip_l, knee_l)])

    if MOTION_TYPES[kind] == "stand":
        sway = 0.1 * amplitude

        def script(t: float) -> np.ndarray:
            s = sway * math.sin(omega * t + phase)  # both legs alike: feet stay planted
            return pose(bend + s, -2 * bend, bend + s, -2 * bend)

    elif MOTION_TYPES[kind] == "squat":
        depth = 0.5 + 0.5 * amplitude

        def script(t: float) -> np.ndarray:
            k = -depth * (1 - math.cos(omega * t)) / 2 - bend
            return pose(-k / 2, k, -k / 2, k)

    elif MOTION_TYPES[kind] == "march":
        lift = 0.5 + 0.5 * amplitude

        def script(t: float) -> np.ndarray:
            r = lift * max(0.0, math.sin(omega * t + phase))
            left = lift * max(0.0, -math.sin(omega * t + phase))
            return pose(r + bend, -1.6 * r - bend, left + bend, -1.6 * left - bend)

    else:  # kick
        reach = 0.6 + 0.6 * amplitude

        def script(t: float) -> np.ndarray:
            r = reach * max(0.0, math.sin(omega * t))
            hip, knee = bend + r, -2 * bend - 0.4 * r
            return np.array([hip, knee, _flat(bend, -2 * bend), bend, -2 * bend, _flat(bend, -2 * bend)])

    return script


def _generate_one(args: tuple[int, int, int, int]) -> np.ndarray:
    seed, index, kind, frames = args
    rng = np.random.default_rng([seed, index])
    return _biped().rollout(motion_script(kind, rng), frames, TRACKING)


_BIPED: Biped | None = None


def _biped() -> Biped:
    global _BIPED
    if _BIPED is None:
        _BIPED = Biped()
    return _BIPED


def _track_chunk(args: tuple[np.ndarray, TrackingGains]) -> np.ndarray:
    motions, gains = args
    biped = _biped()
    return np.stack([biped.track(m, gains) for m in motions])


def _violations_chunk(motions: np.ndarray) -> np.ndarray:
    biped = _biped()
    return np.stack([_violations_one(biped, m) for m in motions])


def generate_motions(
    labels: Sequence[int],
    frames: int,
    seed: int,
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``(len(labels), frames, 9)`` ground-truth motions: motion ``i`` is a rollout of a scripted
    controller of type ``labels[i]`` with parameters drawn from ``(seed, i)``. Deterministic."""
    jobs = [(seed, i, int(k), frames) for i, k in enumerate(labels)]
    size = max(1, math.ceil(len(jobs) / max(1, num_workers * 4)))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    out = run_chunks(_generate_chunk, list(chunks), num_workers, progress, [len(c) for c in chunks], None)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, frames, 9), np.float32)


def _generate_chunk(jobs: list[tuple[int, int, int, int]]) -> np.ndarray:
    return np.stack([_generate_one(job) for job in jobs])


def track_motions(
    motions: np.ndarray,
    num_workers: int = 0,
    chunk_size: int = 16,
    gains: TrackingGains = TRACKING,
    progress: Callable[[int], None] | None = None,
    start_method: str | None = None,
    smooth: float = 0.0,
) -> np.ndarray:
    """:meth:`Biped.track` on every motion of ``(num, frames, 9)``, in ``num_workers`` processes
    (``0``/``1``: in this process). Each motion is simulated alone from its first frame, so the
    result does not depend on the number of workers or the chunking.

    ``smooth`` > 0 low-passes the targets first (a Gaussian of that many frames' standard
    deviation along time): frame-to-frame jitter asks for accelerations no torque-limited body
    can follow, and tracking it makes the controller lag and sag.
    """
    motions = np.asarray(motions, dtype=np.float64)
    if smooth > 0:
        from scipy.ndimage import gaussian_filter1d

        motions = gaussian_filter1d(motions, smooth, axis=1, mode="nearest")
    chunks = [(motions[i : i + chunk_size], gains) for i in range(0, len(motions), chunk_size)]
    sizes = [len(c[0]) for c in chunks]
    out = run_chunks(_track_chunk, list(chunks), num_workers, progress, sizes, start_method)
    return np.concatenate(out) if out else motions.copy()


def _violations_one(biped: Biped, motion: np.ndarray) -> np.ndarray:
    points = biped.contact_points(motion)  # (frames, 4, 2)
    height = points[..., 1]
    lowest = height.min(axis=1)
    penetration = np.maximum(0.0, -lowest).mean()
    floating = np.maximum(0.0, lowest - CONTACT_TOLERANCE).mean()
    touching = height < CONTACT_TOLERANCE
    both = touching[1:] & touching[:-1]
    speed = np.abs(np.diff(points[..., 0], axis=0)) * FPS
    skating = float(speed[both].mean()) if both.any() else 0.0
    q = np.asarray(motion)
    over = np.maximum(0.0, q - biped.high) + np.maximum(0.0, biped.low - q)
    joint_limit = (over * biped.limited).sum(axis=1).mean()
    return np.array([penetration, floating, skating, joint_limit])


def physics_violations(motions: np.ndarray, num_workers: int = 0) -> dict[str, np.ndarray]:
    """Per motion of ``(num, frames, 9)``:

    - ``penetration``: mean over frames of how deep the lowest foot point is below the floor (m);
    - ``floating``: mean over frames of how high the lowest foot point is above the contact
      tolerance (m) — the body hanging in the air;
    - ``skating``: mean horizontal speed (m/s) of foot points in contact in two successive frames;
    - ``joint_limit``: mean over frames of the summed excess of joints over their ranges (rad).
    """
    motions = np.asarray(motions, dtype=np.float64)
    size = max(1, math.ceil(len(motions) / max(1, num_workers * 4)))
    chunks = [motions[i : i + size] for i in range(0, len(motions), size)]
    out = run_chunks(_violations_chunk, list(chunks), num_workers, None, [len(c) for c in chunks], None)
    values = np.concatenate(out) if out else np.zeros((0, 4))
    return {name: values[:, i] for i, name in enumerate(("penetration", "floating", "skating", "joint_limit"))}
