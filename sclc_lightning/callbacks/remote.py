"""RemoteSync: publish a run directory to object storage as the fit goes
(:mod:`sclc_lightning.store.remote`).

``sclc fit --run_dir s3://bucket/run`` adds it; in Python::

    remote = RemoteRunDirectory("s3://bucket/run").open()  # the lease, and the latest snapshot pulled
    loop = SelfConsumingLoop(1.0, 5, output_dir=remote.local / "synthetic")
    trainer = pl.Trainer(default_root_dir=remote.local, callbacks=[loop, RemoteSync(remote)])
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from sclc_lightning.store.remote import RemoteRunDirectory

__all__ = ["RemoteSync"]


class RemoteSync(pl.Callback):
    """Publishes ``remote.local`` as a snapshot at each generation's end (after the checkpoint
    when it runs after Lightning's ``ModelCheckpoint``, as ``sclc fit`` places it; otherwise the
    checkpoint goes with the next snapshot), at the fit's end and when the fit stops on an error;
    gives the lease up at teardown.

    Args:
        remote: the run directory, opened (:meth:`RemoteRunDirectory.open`).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> remote = RemoteRunDirectory(Path(tempfile.mkdtemp()).as_uri(), Path(tempfile.mkdtemp()) / "work").open()
        >>> callbacks = [RemoteSync(remote)]  # beside the loop, whose output_dir is remote.local / "synthetic"
        >>> remote.close()
    """

    def __init__(self, remote: RemoteRunDirectory) -> None:
        if not isinstance(remote, RemoteRunDirectory):
            raise TypeError(
                f"`remote` must be a RemoteRunDirectory (RemoteRunDirectory('s3://bucket/run').open()), got"
                f" {type(remote).__name__}."
            )
        self.remote = remote

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            raise NotImplementedError(
                f"A run directory on object storage ({self.remote.url}) takes one process for now: the ranks of a"
                " multi-process run exchange files through a folder they share. Give --run_dir a shared filesystem"
                " path (NFS, Lustre) for a multi-process run."
            )

    def _push(self, trainer: pl.Trainer, when: str) -> None:
        if trainer.is_global_zero:
            snapshot = self.remote.push()
            if snapshot is not None:
                rank_zero_info(f"sclc: {self.remote.url} snapshot {snapshot.number} published ({when}).")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._push(trainer, f"generation {trainer.current_epoch}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._push(trainer, "the fit's end")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:
            self._push(trainer, f"stopped by {type(exception).__name__}")
        except Exception as err:  # the fit's own error is the one to report
            rank_zero_warn(f"sclc: publishing {self.remote.url} after the fit stopped failed: {err}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.remote.close()

    def state_dict(self) -> dict[str, Any]:
        return {}
