"""Fails loudly if Lightning changes the private attributes `_lightning_compat` relies on."""

from __future__ import annotations

from typing import Any

from helpers import GaussianModel, gaussian_points, loader, trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.connectors.data_connector import _DataLoaderSource
from torch.utils.data import DataLoader

from sclc_lightning import _lightning_compat as compat


def test_private_attributes_exist(tmp_path: Any) -> None:
    t = trainer(tmp_path, [])
    assert isinstance(t.fit_loop._data_source, _DataLoaderSource)
    assert hasattr(t.fit_loop, "_combined_loader")
    assert isinstance(t.reload_dataloaders_every_n_epochs, int)
    assert t.fit_loop.epoch_progress.current.processed == 0
    assert compat.cluster_environment(t) is not None
    assert compat.hpc_checkpoint_path(t).endswith("hpc_ckpt_1.ckpt")


def test_provider_source_serves_every_epoch_and_restores(tmp_path: Any) -> None:
    calls: list[int] = []
    points = gaussian_points(20)

    class Install(Callback):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            self.user = compat.request_train_dataloader(trainer)
            trainer.reload_dataloaders_every_n_epochs = 1

            def provide() -> DataLoader[Any]:
                calls.append(compat.epoch_being_loaded(trainer))
                return DataLoader(points[: 5 * len(calls)], batch_size=5)

            compat.install_train_source(trainer, provide)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            compat.restore_train_source(trainer)

    cb = Install()
    t = trainer(tmp_path, [cb], max_epochs=3)
    user_loader = loader(points)
    t.fit(GaussianModel(), train_dataloaders=user_loader)
    assert cb.user is user_loader
    assert calls == [0, 1, 2] and t.global_step == 1 + 2 + 3
    assert t.fit_loop._data_source.instance is user_loader and type(t.fit_loop._data_source) is _DataLoaderSource
    compat.invalidate_train_dataloader(t)
    assert t.fit_loop._combined_loader is None


def test_the_checkpoint_a_fit_resumes_is_known_in_setup(tmp_path: Any) -> None:
    """``resuming_from`` reads ``Trainer._run``'s ``ckpt_path`` while the callbacks are set up,
    before Lightning restores the checkpoint (the loop's seed for DataModules relies on it)."""
    seen: list[str | None] = []

    class Look(Callback):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            seen.append(compat.resuming_from(trainer))

    first = trainer(tmp_path, [Look()], max_epochs=1)
    first.fit(GaussianModel(), loader(gaussian_points(20)))
    path = str(tmp_path / "one.ckpt")
    first.save_checkpoint(path)
    trainer(tmp_path, [Look()], max_epochs=2).fit(GaussianModel(), loader(gaussian_points(20)), ckpt_path=path)
    assert seen == [None, path]
