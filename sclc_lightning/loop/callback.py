r"""The :class:`SelfConsumingLoop` callback: self-consuming and self-correcting training in one fit.

Generation 0 trains on the real data. At the start of each later generation :math:`t` the loop
samples :math:`\lfloor \lambda n \rfloor` points from the model of generation :math:`t-1`,
passes them through the corrector :math:`\pi_\gamma`, rebuilds the training set with the mixing
policy (``mode``) and trains on a fixed number of samples drawn from it. One generation is one
Lightning epoch, so the optimizer, LR schedulers, loggers and checkpoints carry over untouched
(Gillman et al. 2024, Alg. 1; Bertrand et al. 2024, Alg. 1).

The callback only wires the Lightning hooks to the modules that do the work: ``config``
(arguments, fingerprint), ``takeover`` (trainer settings), ``real_source``, ``run`` (identity
and resume), ``session`` (one fit), ``preflight`` (the checks before generation 0),
``production`` (sample, correct, store), ``loader``, ``seeding`` and ``records``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from sclc_lightning import _lightning_compat as compat
from sclc_lightning._checks import plain_in_place, plain_numbers
from sclc_lightning._trainer import GenerationalLoop
from sclc_lightning.correctors.base import Corrector, ModuleCorrector
from sclc_lightning.correctors.model import ModelCorrector
from sclc_lightning.items.codec import FieldKey
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.config import LoopConfig, LoopSettings
from sclc_lightning.loop.fingerprint import build as build_fingerprint
from sclc_lightning.loop.interruption import StopPoint
from sclc_lightning.loop.real_source import RealSource, find_real_data
from sclc_lightning.loop.records import GenerationRecord, read_history
from sclc_lightning.loop.run import LoopState, adopt_checkpoint_seed, check_extent, resolve_seed
from sclc_lightning.loop.session import FitSession, preview_loader, start_session
from sclc_lightning.loop.settings import docstring_arguments
from sclc_lightning.loop.steps import count_generation_step
from sclc_lightning.loop.takeover import TrainerTakeover
from sclc_lightning.mixing.policies import MixingPolicy
from sclc_lightning.mixing.weighting import reads_item_weights
from sclc_lightning.sampler import BoundSampler, bind_sampler
from sclc_lightning.seeding import fit_seed

__all__ = ["SelfConsumingLoop"]


@plain_numbers
class SelfConsumingLoop(LoopSettings, GenerationalLoop):
    r"""Train a generative LightningModule on its own (corrected) samples, generation after generation.

    The LightningModule needs a sampler, by default its ``sample(num_samples, *, generator=None,
    conditions=None)`` method, returning a tensor of ``num_samples`` new data points (the data
    field of an item). Everything else (``training_step``, optimizers, the DataModule) stays as
    it is. Before generation 0 the loop checks the sampler's signature, audits the real items
    and runs a tiny draw through sample, correction, item building and collation (the dry run).

    Args: every setting, with its default and role, is declared once in
    :data:`sclc_lightning.loop.settings.LOOP_SETTINGS` (the table of ``docs/loop.md``); at import
    this section is replaced by that table's text, which ``help()`` and ``sclc fit --help`` show.

    Raises:
        ValueError: an argument is out of range; the message names it and its value.

    Examples:
        >>> loop = SelfConsumingLoop(synthetic_fraction=0.5, generations=3, images_per_generation=256)
        >>> trainer = pl.Trainer(callbacks=[loop], max_epochs=-1)  # doctest: +SKIP
        >>> trainer.fit(model, datamodule=datamodule)  # doctest: +SKIP
    """

    def __init__(
        self,
        synthetic_fraction: float | list[float] | str | dict[str, Any] | Callable[[int], float],
        generations: int,
        images_per_generation: int | None = None,
        passes_per_generation: float | None = None,
        initial_images: int | None = None,
        mode: MixingPolicy | str = "augment",
        mode_kwargs: dict[str, Any] | None = None,
        corrector: Corrector | str | None = None,
        corrector_kwargs: dict[str, Any] | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        sample_batch_size: int = 1024,
        data_field: FieldKey = None,
        condition_field: FieldKey = None,
        shard_rows: int = 65536,
        start_from: str = "previous",
        fields: dict[int | str, Any] | None = None,
        sampler: str | Callable[..., Any] = "sample",
        dry_run: bool = True,
        accept_other_real_data: bool = False,
        accept_edited_code: bool = False,
        sample_kwargs: dict[str, Any] | None = None,
        max_oversampling: float = 100.0,
        model_corrector: ModelCorrector | str | None = None,
        model_corrector_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.config = LoopConfig.from_arguments(
            {
                "synthetic_fraction": synthetic_fraction,
                "generations": generations,
                "images_per_generation": images_per_generation,
                "passes_per_generation": passes_per_generation,
                "initial_images": initial_images,
                "mode": mode,
                "mode_kwargs": mode_kwargs,
                "corrector": corrector,
                "corrector_kwargs": corrector_kwargs,
                "output_dir": output_dir,
                "seed": seed,
                "sample_batch_size": sample_batch_size,
                "data_field": data_field,
                "condition_field": condition_field,
                "shard_rows": shard_rows,
                "start_from": start_from,
                "fields": fields,
                "sampler": sampler,
                "dry_run": dry_run,
                "accept_other_real_data": accept_other_real_data,
                "accept_edited_code": accept_edited_code,
                "sample_kwargs": sample_kwargs,
                "max_oversampling": max_oversampling,
                "model_corrector": model_corrector,
                "model_corrector_kwargs": model_corrector_kwargs,
            }
        )
        self._start_state()

    def _start_state(self) -> None:
        """What the callback keeps between hooks, before any fit."""
        self._requested_seed: int | None = self.config.seed
        self._fit_seed: int | None = None
        self._history: list[GenerationRecord] = []
        self._takeover = TrainerTakeover()
        self._corrector: Corrector | None = self.config.corrector
        self._sampler: BoundSampler | None = None
        self._source: RealSource | None = None
        self._session: FitSession | None = None
        self._restored: LoopState | None = None
        self._stop_point = StopPoint(self._safe_point)
        self._steps_at_start = -1  # trainer.global_step when the generation's epoch started
        self._said_steps = False

    # ------------------------------------------------------------------ what users read ----
    @property
    def output_dir(self) -> Path | None:
        """The synthetic data's folder: the current (or last) fit's, else the configured one."""
        return self._session.store.root if self._session is not None else self.config.output_dir

    @property
    def history(self) -> list[GenerationRecord]:
        """One record per generation trained (all fits of this callback); in a process that did
        not train (the parent of ``ddp_spawn``), those in ``output_dir``'s ``history.jsonl``."""
        return self._history if self._history or self._session else read_history(self.config.output_dir)

    def sampler(self, pl_module: pl.LightningModule) -> BoundSampler:
        """The module's sampler, as the loop calls it (checked at set-up)."""
        if self._sampler is None or self._sampler.module is not pl_module:
            config = self.config
            self._sampler = bind_sampler(
                pl_module, config.sampler, condition_field=config.condition_field, extra=config.sample_kwargs
            )
        return self._sampler

    @property
    def conditional(self) -> bool:
        """Whether the loop passes conditions to the sampler (it has a condition field)."""
        return self.config.condition_field is not None

    @property
    def real_data(self) -> RealData:
        """The real training data, as correctors see it (known once fitting has started)."""
        if self._source is None:
            raise RuntimeError("`real_data` is known once fitting has started.")
        return self._source.real

    @property
    def n(self) -> int:
        """``n``: the real items each generation sees (the whole real set, or the fresh subset)."""
        n = self.config.policy.n(None if self._source is None else len(self._source.real))
        if n is None:
            raise RuntimeError("`n` is known once fitting has started.")
        return n

    @property
    def num_synthetic(self) -> int:
        r""":math:`\lfloor \lambda n \rfloor` (with a schedule, the largest :math:`\lambda_t`)."""
        return self.config.num_synthetic(self.n)

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it resumes."""
        source = self._source  # the items and the real data, once the fit has found them
        item, real = (source.real.codec.to_json(), source.fingerprint()) if source is not None else (None, None)
        return build_fingerprint(self.config, self._corrector, item, real)

    @property
    def state_key(self) -> str:
        return "SelfConsumingLoop"

    # ------------------------------------------------------------------ hooks --------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # A callback may serve several fits: forget what the previous one found.
        self._source, self._session, self._restored, self._sampler = None, None, None, None
        self.config = resolve_seed(self.config, self._requested_seed, trainer)
        self._fit_seed = fit_seed(trainer)[0]  # what DataModules with seed=None took
        self.sampler(pl_module)  # a sampler the loop cannot call is refused now
        reads_item_weights(pl_module)  # and a declaration of weights that is not True/False
        self._corrector = self.config.corrector
        if self._corrector is None and callable(getattr(pl_module, "correct", None)):
            self._corrector = ModuleCorrector(pl_module)
        if self._corrector is not None:
            self._corrector.attach(pl_module)  # a corrector that scores with the model keeps it
        provider = lambda: self._train_dataloader(trainer, pl_module)  # noqa: E731
        self._takeover.take(trainer, provider, self.config.num_epochs, self.config.generations)
        if self._stop_point not in trainer.callbacks:  # type: ignore[attr-defined]
            trainer.callbacks.append(self._stop_point)  # type: ignore[attr-defined]

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._takeover.uncap_steps(trainer)
        self.config = adopt_checkpoint_seed(self.config, self._requested_seed, self._restored)
        source, sampler = self._real_source(trainer), self.sampler(pl_module)
        self._session = start_session(
            trainer, pl_module, self.config, source, self._corrector, sampler, self.fingerprint(), self._restored
        )
        compat.invalidate_train_dataloader(trainer)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._session is not None:
            self._session.stops.install(trainer)  # again: Lightning has set its own SIGTERM handler

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._steps_at_start = trainer.global_step
        if self._session is not None:
            self._session.progress.start_training()

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == 0:
            # Lightning's bar says "Epoch e"; one epoch is one generation here. The bar names its
            # epoch after this callback's epoch hook, so rename it at the first batch.
            text = f"Generation {self.generation_of_epoch(trainer.current_epoch)}/{self.config.generations}"
            compat.describe_train_progress(trainer.progress_bar_callback, text)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._session is not None:
            self._session.progress.start_validation()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._session is not None:
            self._session.progress.end_validation()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._session is None:
            return
        generation = self.generation_of_epoch(trainer.current_epoch)
        record = self._session.progress.finish(generation)
        if record.num_trained and trainer.global_step == self._steps_at_start:
            count_generation_step(trainer, pl_module, generation, say=not self._said_steps)
            self._said_steps = True
        self._history.append(record)
        record.log(trainer, self._session.history)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._takeover.restore(trainer)
        if self._session is not None:
            self._session.close(trainer, finished=True)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # A fit with nothing left to train (a resume of a finished run) never reaches
        # on_train_end: the run directory must not stay locked by this process.
        if stage == "fit" and self._session is not None:
            self._takeover.restore(trainer)
            self._session.close(trainer, finished=False)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._takeover.restore(trainer)
        if self._session is not None:
            self._session.close(trainer, finished=False)

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        plain_in_place(checkpoint)  # a NumPy number (a learning rate given as one) would not load with weights_only
        session = self._session
        if session is not None and not session.checkpointed and trainer.is_global_zero:
            # From now on a rerun without `ckpt_path` must not start this run's folder over.
            session.store.mark(checkpointed=True)
            session.checkpointed = True

    @override
    def state_dict(self) -> dict[str, Any]:
        session = self._session
        return LoopState(
            run_id=None if session is None else session.run_id,
            fingerprint=self.fingerprint(),
            output_dir=None if session is None else str(session.store.root),
            last_generation=self._history[-1].generation if self._history else None,
            records=None if session is None else session.expected_records(),
            position=None if session is None or session.saving is None else session.saving.to_dict(),
            initial=None if session is None or session.initial is None else session.initial.to_state(),
            fit_seed=self._fit_seed,
        ).to_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = LoopState.from_dict(state_dict)
        check_extent(self._restored, self.config.generations)  # before Lightning restores the epoch

    # ------------------------------------------------------------------ internals ----------
    def _safe_point(self, trainer: pl.Trainer, batch_idx: int) -> None:
        if self._session is not None:
            self._session.safe_point(trainer, batch_idx)

    def _real_source(self, trainer: pl.Trainer) -> RealSource:
        if self._source is None:
            config = self.config
            self._source = find_real_data(
                trainer, config.policy, config.data_field, config.condition_field, config.fields
            )
        return self._source

    def _train_dataloader(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        """The provider Lightning calls at the start of every epoch (and earlier, for
        ``estimated_stepping_batches``)."""
        source = self._real_source(trainer)
        if self._session is None:
            loader, steps = preview_loader(trainer, self.config, source)
            self._takeover.cap_steps(trainer, steps)  # estimated_stepping_batches = the fit's steps
            return loader
        generation = self.generation_of_epoch(compat.epoch_being_loaded(trainer))
        return self._session.train_loader(trainer, pl_module, generation)


def _with_arguments(doc: str) -> str:
    """``doc`` with its ``Args:`` paragraph replaced by the settings' declared documentation."""
    head, rest = doc.split("    Args: every setting", 1)
    return head + docstring_arguments() + "\n\n" + rest.split("\n\n", 1)[1]


SelfConsumingLoop.__doc__ = _with_arguments(SelfConsumingLoop.__doc__ or "")
