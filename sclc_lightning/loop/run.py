"""Run identity and resume: which run owns ``output_dir``, and whether a checkpoint may continue it.

Global rank zero locks the folder for the life of the fit, inspects it and decides for every
rank, so that no rank can see a manifest another rank just wrote. A new run gets a fresh id and
refuses a folder holding another run's data (a run that stopped before its first checkpoint is
started over, with a warning). A resumed run (``trainer.fit(..., ckpt_path=...)``) must find its
own run's folder, the same settings (:func:`~sclc_lightning.loop.fingerprint.fingerprint_changes`),
the same item structure and the manifest records the checkpoint saw, and every generation's
files must match their records; every difference is refused with a message naming the file or
the old and new values.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from sclc_lightning._callables import strip_code_identities
from sclc_lightning.items.codec import ItemCodec
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.fingerprint import (
    CODE_IDENTITY_FORMAT,
    STATE_FORMAT,
    ResumeRefused,
    check_format,
    code_changes,
    fingerprint_changes,
    records_code,
)
from sclc_lightning.seeding import fit_seed
from sclc_lightning.store.lock import RunDirectoryLocked, RunLock
from sclc_lightning.store.manifest import Manifest, RunDirectoryError, StoredGeneration
from sclc_lightning.store.synthetic import SyntheticStore

__all__ = [
    "STATE_FORMAT",
    "LoopState",
    "OpenedRun",
    "adopt_checkpoint_seed",
    "check_extent",
    "check_resume",
    "open_run",
    "resolve_seed",
]


@dataclass(frozen=True)
class LoopState:
    """The loop's state in a Lightning checkpoint: small, and the same on every rank.

    Attributes:
        run_id: the run the checkpoint belongs to.
        fingerprint: the settings it ran with.
        output_dir: where its synthetic data is.
        last_generation: the last generation trained before the checkpoint.
        records: ``[generation, count, record digest]`` of every generation on disk up to the
            one being trained when the checkpoint was saved (``None`` in format 1 states).
        format: the state format it was written in.
        position: where in its generation a checkpoint saved mid-generation was saved
            (:class:`~sclc_lightning.loop.interruption.GenerationPosition` as a dict), else ``None``.
        initial: with ``start_from="initial"``, the digest of the initial weights file and the
            optimizer and scheduler states the run started from
            (:meth:`~sclc_lightning.loop.restart.InitialState.to_state`), else ``None``.
        fit_seed: the run's seed of the fit (``seed_everything``'s or the one drawn for it), which
            DataModules with ``seed=None`` took; a resume gives it to them again
            (:func:`~sclc_lightning.seeding.checkpoint_seed`). ``None`` in older states.
    """

    run_id: str | None
    fingerprint: dict[str, Any]
    output_dir: str | None
    last_generation: int | None
    records: list[list[Any]] | None = None
    format: int = STATE_FORMAT
    position: dict[str, Any] | None = None
    initial: dict[str, Any] | None = None
    fit_seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        # Shallow (dataclasses.asdict deep-copies): the records list grows with every generation.
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LoopState:
        """Read a checkpoint's state.

        Raises:
            ResumeRefused: a state format this version cannot read.
        """
        check_format(state.get("format"))
        records = state.get("records")
        return cls(
            state.get("run_id"),
            dict(state.get("fingerprint") or {}),
            state.get("output_dir"),
            state.get("last_generation"),
            None if records is None else [list(r) for r in records],
            int(state["format"]),
            state.get("position"),
            state.get("initial"),
            state.get("fit_seed"),
        )


@dataclass(frozen=True)
class OpenedRun:
    """The run directory a fit works in.

    Attributes:
        store: its synthetic store.
        run_id: the run's id.
        records: the generations already on disk (checked against their files).
        lock: the directory's lock, held by global rank zero until the fit ends.
    """

    store: SyntheticStore
    run_id: str
    records: dict[int, StoredGeneration]
    lock: RunLock


def resolve_seed(config: LoopConfig, requested: int | None, trainer: pl.Trainer) -> LoopConfig:
    """``config`` with the seed of this fit: ``requested`` when given, else the run's
    (:func:`~sclc_lightning.seeding.fit_seed`: ``seed_everything``'s, else one drawn on rank zero
    and broadcast), which is said in the log."""
    if requested is not None:
        return dataclasses.replace(config, seed=int(requested))
    seed, origin = fit_seed(trainer)
    how = {
        "drawn": "drawn afresh (no seed_everything)",
        "checkpoint": "taken from the checkpoint the fit resumes",
    }.get(origin, "from seed_everything")
    rank_zero_info(
        f"SelfConsumingLoop: seed {seed}, the run's seed {how}; pass it to seed_everything to repeat the run"
        " (the loop's `seed=` alone fixes the loop's draws, not a DataModule's data)."
    )
    return dataclasses.replace(config, seed=seed)


def adopt_checkpoint_seed(config: LoopConfig, requested: int | None, restored: LoopState | None) -> LoopConfig:
    """A resume without an explicit seed continues with the checkpoint's (said when it differs
    from the run's); an explicit one is compared as any setting."""
    if requested is not None or restored is None:
        return config
    recorded = restored.fingerprint.get("seed")
    if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded == config.seed:
        return config
    rank_zero_info(
        f"SelfConsumingLoop: resuming with the checkpoint's seed {recorded} (the run's seed is now {config.seed});"
        " pass `seed=` to insist on another, which the resume then refuses."
    )
    return dataclasses.replace(config, seed=recorded)


def check_resume(
    restored: LoopState,
    fingerprint: Mapping[str, Any],
    accept_other_real_data: bool = False,
    accept_edited_code: bool = False,
) -> None:
    """Refuse to resume a checkpoint whose settings, code or real data differ from this fit's;
    other real data is accepted, with a warning, when ``accept_other_real_data``, and edited
    callables (same name, other code) when ``accept_edited_code``.

    Raises:
        ResumeRefused: naming every setting that changed, with both values.
    """
    changes = fingerprint_changes(restored.fingerprint, fingerprint, restored.format)
    if restored.format < CODE_IDENTITY_FORMAT and records_code(fingerprint):
        rank_zero_info(
            f"SelfConsumingLoop: the checkpoint (state format {restored.format}) names its callables without their"
            " code, so they are compared by name only: an edit made since it was written cannot be detected."
        )
    data = [c for c in changes if c.startswith("real_data")]
    if data and accept_other_real_data:
        rank_zero_warn(f"SelfConsumingLoop: resuming with other real data, as accepted ({', '.join(data)}).")
        changes = [c for c in changes if c not in data]
    edited = code_changes(restored.fingerprint, fingerprint, restored.format)
    code = [c for c in changes if c.split(":", 1)[0] in edited]
    if code and accept_edited_code:
        rank_zero_warn(f"SelfConsumingLoop: resuming with edited code, as accepted ({', '.join(code)}).")
        changes = [c for c in changes if c not in code]
    if changes:
        hints = []
        if data:
            hints.append(
                "the real data differs from the run's: resume with the same data, or pass"
                " accept_other_real_data=True if you mean to"
            )
        if code:
            names = ", ".join(f"`{c.split(':', 1)[0]}`" for c in code)
            hints.append(
                f"the code of {names} was edited since the checkpoint (same name, other code): resume with the code"
                " the run started with, or pass accept_edited_code=True (--loop.accept_edited_code true) to train"
                " on with the edited code on purpose"
            )
        hint = "".join(f"; {h}" for h in hints)
        raise ResumeRefused(f"Cannot resume a self-consuming run with changed settings ({', '.join(changes)}){hint}.")


def check_extent(restored: LoopState, generations: int) -> None:
    """Refuse a checkpoint past this fit's last generation (``generations`` lowered below where
    the run is); say so when it ends at the last one (nothing left to train).

    Raises:
        ResumeRefused: naming the checkpoint's generation and ``generations``.
    """
    last = restored.last_generation
    if last is None:
        return
    if last > generations:
        raise ResumeRefused(
            f"The checkpoint ends at generation {last}, past this fit's last (`generations={generations}`): resume"
            f" with generations >= {last} (more trains on), or start a new run to train {generations}."
        )
    if last == generations and restored.position is None:
        rank_zero_info(
            f"SelfConsumingLoop: the checkpoint ends at generation {last}, the last of `generations={generations}`:"
            " the run is complete and there is nothing left to train; raise `generations` to continue it."
        )


def _resume(store: SyntheticStore, restored: LoopState, codec: ItemCodec, real_size: int) -> None:
    """Check that the folder is the one the checkpoint left (rank zero, under the lock)."""
    manifest = store.read_manifest()
    if manifest is None:
        raise RunDirectoryError(
            f"{store.manifest_path} is missing, but the checkpoint being resumed belongs to run"
            f" {restored.run_id}, whose synthetic data it describes. Restore the folder, or start a new"
            " run (without `ckpt_path`)."
        )
    if manifest.run_id != restored.run_id:
        raise ResumeRefused(
            f"{store.manifest_path} belongs to run {manifest.run_id}, the checkpoint to run"
            f" {restored.run_id}; pass the run's own `output_dir`."
        )
    # the code identities of field rules were compared with the fingerprint; here the structure
    if strip_code_identities(manifest.item) != strip_code_identities(codec.to_json()):
        raise ResumeRefused(
            f"{store.manifest_path} stores items structured as {manifest.item}, but the real data's items"
            f" are now {codec.to_json()}; resume with the data the run started with."
        )
    if restored.records is not None:
        store.check_expected(restored.records, manifest)
        manifest = _drop_unvouched(store, manifest, restored.records)
    store.remove_stale()
    for record in manifest.generations:
        store.verify(record, codec, real_size)


def _drop_unvouched(store: SyntheticStore, manifest: Manifest, vouched: list[list[Any]]) -> Manifest:
    """Drop the generations sampled after the checkpoint: no checkpoint vouches for them (a
    forged record with a matching digest would otherwise be trained on), and the loop, being
    deterministic, samples them again identically. Their folders go with :meth:`remove_stale`."""
    last = max((g for g, _, _ in vouched), default=0)
    newer = sorted(g for g in manifest.records() if g > last)
    if not newer:
        return manifest
    rank_zero_info(
        f"SelfConsumingLoop: generations {newer} were sampled after the checkpoint (which vouches for"
        f" generations up to {last}); they are dropped and sampled again."
    )
    trimmed = manifest.up_to(last)
    store.write_manifest(trimmed)
    return trimmed


def _start(store: SyntheticStore) -> bool:
    """A new run: whether the folder is free, after starting over a run that crashed before its
    first checkpoint (rank zero, under the lock)."""
    manifest = store.read_manifest()
    if manifest is None:
        store.remove_stale()
        return True
    if manifest.checkpointed or manifest.finished:
        raise ValueError(
            f"`output_dir` {str(store.root)!r} already holds the synthetic data of run {manifest.run_id};"
            " use a new `output_dir` or resume that run from its checkpoint (`ckpt_path`)."
        )
    rank_zero_warn(
        f"`output_dir` {str(store.root)!r} holds the data of run {manifest.run_id}, which stopped before"
        f" its first checkpoint and cannot be resumed; starting over in it."
    )
    store.start_over()
    return True


_ERRORS: dict[str, type[Exception]] = {
    "RunDirectoryError": RunDirectoryError,
    "RunDirectoryLocked": RunDirectoryLocked,
    "ValueError": ValueError,
    "ResumeRefused": ResumeRefused,
}


def run_root(trainer: pl.Trainer, configured: Path | None, restored: LoopState | None) -> Path:
    """The synthetic data folder of a fit: the configured one, else the resumed run's, else
    ``<trainer.log_dir or default_root_dir>/synthetic``."""
    if configured is not None:
        return configured
    if restored is not None and restored.output_dir:
        return Path(restored.output_dir)
    return Path(trainer.log_dir or trainer.default_root_dir) / "synthetic"


def describe_run(config: LoopConfig, fingerprint: Mapping[str, Any], n: int) -> dict[str, Any]:
    """The settings written into a new manifest: the fingerprint without the item structure
    (the manifest records that in its own field), plus the number of generations, ``n`` and the
    training budgets (``images_per_generation``, ``initial_images``, ``passes_per_generation``)."""
    described = {k: v for k, v in fingerprint.items() if k != "item"}
    described.update(generations=config.generations, n=n)
    described.update(images_per_generation=config.images_per_generation, initial_images=config.initial_images)
    if config.passes_per_generation is not None:  # runs without it recorded nothing
        described.update(passes_per_generation=config.passes_per_generation)
    return described


def open_run(
    trainer: pl.Trainer,
    root: Path,
    real: RealData,
    config: Mapping[str, Any],
    restored: LoopState | None,
) -> OpenedRun:
    """Lock, check and open (or start) the run directory ``root`` for this fit.

    Args:
        trainer: the trainer (its strategy carries rank zero's decisions to every rank).
        root: the synthetic data folder.
        real: the real data (the structure of its items, its size).
        config: the configuration written into a new manifest.
        restored: the loop's state from the checkpoint being resumed, if any.

    Raises:
        RunDirectoryLocked: another fit uses the folder.
        RunDirectoryError: the folder is not what the checkpoint left (missing, changed or
            damaged files), naming the file.
        ValueError: the folder belongs to another run, or the items changed (the settings are
            compared before, by :func:`check_resume`).
        FileNotFoundError: a rank cannot see the manifest (a folder not shared between nodes).
    """
    root = Path(trainer.strategy.broadcast(str(root), src=0))
    store = SyntheticStore(root)
    lock = RunLock(root)
    run_id = restored.run_id if restored is not None else None
    problem: tuple[str, str] | None = None
    fresh = False
    if trainer.is_global_zero:
        try:
            lock.acquire(run_id)
            if restored is not None:
                _resume(store, restored, real.codec, len(real))
            else:
                fresh = _start(store)
        except (RunDirectoryError, RunDirectoryLocked, ValueError) as err:  # ResumeRefused included
            problem = (type(err).__name__, str(err))
            lock.release()
    problem, fresh = trainer.strategy.broadcast((problem, fresh), src=0)
    if problem is not None:
        raise _ERRORS.get(problem[0], RunDirectoryError)(problem[1])
    if run_id is None:
        run_id = trainer.strategy.broadcast(uuid.uuid4().hex, src=0)
    if trainer.is_global_zero:
        lock.update(run_id)
        if fresh:
            store.create(run_id, config, real.codec)
    trainer.strategy.barrier("sclc_manifest")
    manifest = store.read_manifest()
    if manifest is None:
        raise FileNotFoundError(
            f"{store.manifest_path} is missing on rank {trainer.global_rank}; with several"
            " nodes `output_dir` must be on a filesystem shared by all of them."
        )
    return OpenedRun(store, run_id, manifest.records(), lock)
