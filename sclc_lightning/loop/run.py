"""Run identity and resume: which run owns ``output_dir``, and whether a checkpoint may continue it.

A new run gets a fresh id and refuses a folder holding another run's data. A resumed run
(``trainer.fit(..., ckpt_path=...)``) must find its own run's folder, the same settings
(:func:`~sclc_lightning.loop.config.fingerprint_changes`) and the same item structure; every
difference is refused with a message naming the old and new values. Global rank zero inspects the
folder and decides for every rank, so that no rank can see a manifest another rank just wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from sclc_lightning.data.items import ItemCodec
from sclc_lightning.data.store import Manifest, StoredGeneration, SyntheticStore
from sclc_lightning.loop.config import fingerprint_changes

__all__ = ["STATE_FORMAT", "LoopState", "OpenedRun", "open_run"]

#: Format of the loop's state in checkpoints. 2: the fingerprint holds every corrector and mode
#: setting and the item structure; format 1 is still read.
STATE_FORMAT = 2


@dataclass(frozen=True)
class LoopState:
    """The loop's state in a Lightning checkpoint: small, and the same on every rank.

    Attributes:
        run_id: the run the checkpoint belongs to.
        fingerprint: the settings it ran with.
        output_dir: where its synthetic data is.
        last_generation: the last generation trained before the checkpoint.
        format: the state format it was written in.
    """

    run_id: str | None
    fingerprint: dict[str, Any]
    output_dir: str | None
    last_generation: int | None
    format: int = STATE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LoopState:
        """Read a checkpoint's state.

        Raises:
            ValueError: a state format this version cannot read.
        """
        if state.get("format") not in (1, STATE_FORMAT):
            raise ValueError(
                f"Checkpoint holds SelfConsumingLoop state format {state.get('format')!r};"
                f" this version reads formats 1 and {STATE_FORMAT}."
            )
        return cls(
            state.get("run_id"),
            dict(state.get("fingerprint") or {}),
            state.get("output_dir"),
            state.get("last_generation"),
            int(state["format"]),
        )


@dataclass(frozen=True)
class OpenedRun:
    """The run directory a fit works in.

    Attributes:
        store: its synthetic store.
        run_id: the run's id.
        records: the generations already on disk.
    """

    store: SyntheticStore
    run_id: str
    records: dict[int, StoredGeneration]


def _check_resume(restored: LoopState, fingerprint: Mapping[str, Any]) -> None:
    changes = fingerprint_changes(restored.fingerprint, fingerprint, restored.format)
    if changes:
        raise ValueError(f"Cannot resume a self-consuming run with changed settings ({', '.join(changes)}).")


def _problem(store: SyntheticStore, manifest: Manifest, run_id: str | None, codec: ItemCodec) -> str | None:
    if run_id is None:
        return (
            f"`output_dir` {str(store.root)!r} already holds the synthetic data of run {manifest.run_id};"
            " use a new `output_dir` or resume that run from its checkpoint (`ckpt_path`)."
        )
    if manifest.run_id != run_id:
        return (
            f"{store.manifest_path} belongs to run {manifest.run_id}, the checkpoint to run"
            f" {run_id}; pass the run's own `output_dir`."
        )
    if manifest.item != codec.to_json():
        return (
            f"{store.manifest_path} stores items structured as {manifest.item}, but the real data's items"
            f" are now {codec.to_json()}; resume with the data the run started with."
        )
    return None


def open_run(
    trainer: pl.Trainer,
    root: Path,
    codec: ItemCodec,
    fingerprint: Mapping[str, Any],
    config: Mapping[str, Any],
    restored: LoopState | None,
) -> OpenedRun:
    """Open (or start) the run directory ``root`` for this fit.

    Args:
        trainer: the trainer (its strategy carries rank zero's decisions to every rank).
        root: the synthetic data folder.
        codec: the structure of the real items.
        fingerprint: the settings of this fit.
        config: the configuration written into a new manifest.
        restored: the loop's state from the checkpoint being resumed, if any.

    Raises:
        ValueError: the folder belongs to another run, or the settings or items changed.
        FileNotFoundError: a rank cannot see the manifest (a folder not shared between nodes).
    """
    if restored is not None:
        _check_resume(restored, fingerprint)
    root = Path(trainer.strategy.broadcast(str(root), src=0))
    store = SyntheticStore(root)
    run_id = restored.run_id if restored is not None else None
    problem: str | None = None
    fresh = False
    if trainer.is_global_zero:
        manifest = store.read_manifest()
        fresh = manifest is None
        if manifest is not None:
            problem = _problem(store, manifest, run_id, codec)
    problem, fresh = trainer.strategy.broadcast((problem, fresh), src=0)
    if problem is not None:
        raise ValueError(problem)
    if run_id is None:
        run_id = trainer.strategy.broadcast(uuid.uuid4().hex, src=0)
    if fresh and trainer.is_global_zero:
        store.create(run_id, config, codec)
    trainer.strategy.barrier("sclc_manifest")
    manifest = store.read_manifest()
    if manifest is None:
        raise FileNotFoundError(
            f"{store.manifest_path} is missing on rank {trainer.global_rank}; with several"
            " nodes `output_dir` must be on a filesystem shared by all of them."
        )
    return OpenedRun(store, run_id, manifest.records())
