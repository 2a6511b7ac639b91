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

from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.remote import RemoteRunDirectory

__all__ = ["RemoteSync"]


class RemoteSync(pl.Callback):
    """Publishes ``remote.local`` as a snapshot at the start of each generation's training (its
    synthetic data made, the previous generation's checkpoint written), at the fit's end (the last
    checkpoint written), and when the fit stops on an error once training has started (a fit
    refused at set-up publishes nothing); gives the lease up at teardown.

    A snapshot that cannot be published (the store unreachable for a while) is said in one line
    and the fit goes on: the next one publishes everything since. At the fit's end it must
    succeed, or the fit fails saying so. A lost lease, or a snapshot another fit wrote, stops the
    fit at once.

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
        self._training = False

    def __getstate__(self) -> dict[str, Any]:
        raise NotImplementedError(_ONE_PROCESS.format(url=self.remote.url))  # ddp_spawn pickles the callbacks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            raise NotImplementedError(_ONE_PROCESS.format(url=self.remote.url))

    def _push(self, trainer: pl.Trainer, when: str, *, must: bool = False) -> None:
        if not trainer.is_global_zero:
            return
        try:
            snapshot = self.remote.push()
        except RunDirectoryError:
            raise  # a lost lease, a snapshot of another fit, a file changing: never gone on from
        except Exception as err:  # the store unreachable: the next snapshot publishes it all
            said = f"{self.remote.url}: publishing ({when}) failed: {type(err).__name__}: {err}"
            if must:
                raise RunDirectoryError(f"{said}; the fit's end is unpublished: rerun with --ckpt_path last.") from err
            rank_zero_warn(f"sclc: {said}; the fit goes on and publishes at the next generation.")
            return
        if snapshot is not None:
            rank_zero_info(f"sclc: {self.remote.url} snapshot {snapshot.number} published ({when}).")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._training = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._push(trainer, f"generation {trainer.current_epoch} made")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._push(trainer, "the fit's end", must=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not self._training:
            return  # refused at set-up: nothing of this fit to publish (its config.yaml included)
        try:
            self._push(trainer, f"stopped by {type(exception).__name__}")
        except Exception as err:  # the fit's own error is the one to report
            rank_zero_warn(f"sclc: publishing {self.remote.url} after the fit stopped failed: {err}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.remote.close()


_ONE_PROCESS = (
    "A run directory on object storage ({url}) takes one process for now: the ranks of a multi-process run"
    " exchange files through a folder they share. Give a multi-process run a shared filesystem path (NFS,"
    " Lustre) as --run_dir."
)
