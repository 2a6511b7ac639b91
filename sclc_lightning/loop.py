r"""The :class:`SelfConsumingLoop` callback: self-consuming and self-correcting training in one fit.

Generation 0 trains on the real data. At the start of each later generation :math:`t` the loop
samples :math:`\lfloor \lambda n \rfloor` points from the model of generation :math:`t-1`,
passes them through the corrector :math:`\pi_\gamma`, rebuilds the training set according to
``mode`` and trains on a fixed number of samples drawn from it. One generation is one Lightning
epoch, so the optimizer, LR schedulers, loggers and checkpoints carry over untouched
(Gillman et al. 2024, Alg. 1; Bertrand et al. 2024, Alg. 1).
"""

from __future__ import annotations

import inspect
import math
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm
from typing_extensions import override

from sclc_lightning import _lightning_compat as compat
from sclc_lightning.correctors.base import Corrector, ModuleCorrector, make_corrector
from sclc_lightning.data.budget import (
    budget_order,
    derive_seed,
    make_generator,
    num_synthetic,
    rank_slice,
    resolve_budget,
)
from sclc_lightning.data.items import FieldKey, ItemCodec, SyntheticBatch
from sclc_lightning.data.mixing import MODES, GenerationPlan, GenerationSampler, MixedDataset, plan_generation
from sclc_lightning.data.real import RealData
from sclc_lightning.data.store import SyntheticSet, SyntheticStore

__all__ = [
    "GenerationRecord",
    "SelfConsumingLoop",
    "SyntheticDataError",
    "current_generation",
    "eval_mode",
    "find_loop",
]

STATE_FORMAT = 1


class SyntheticDataError(RuntimeError):
    """A model or corrector produced synthetic data of the wrong count, shape, dtype or values."""


@dataclass
class GenerationRecord:
    """What the loop did in one generation (also logged to the trainer's loggers)."""

    generation: int
    num_real: int
    num_synthetic: int
    num_trained: int
    time_sampling_s: float
    time_correcting_s: float
    time_training_s: float


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_optional_count(name: str, value: Any, minimum: int) -> None:
    if value is not None and (not _is_int(value) or value < minimum):
        raise ValueError(f"`{name}` must be None or an integer >= {minimum}, got {value!r}.")


def _draw_indices(size: int, num: int, generator: torch.Generator) -> Tensor:
    """``num`` indices into ``range(size)``: distinct when ``num <= size``, else with replacement."""
    if num <= size:
        return torch.randperm(size, generator=generator)[:num]
    return torch.randint(size, (num,), generator=generator)


@contextmanager
def eval_mode(module: torch.nn.Module, trainer: pl.Trainer | None = None) -> Iterator[None]:
    """Eval mode and no gradients for sampling; the previous mode comes back even on error.

    With a ``trainer``, sampling also runs under the trainer's precision, as ``predict_step``
    does (e.g. bf16 autocast with ``precision="bf16-mixed"``).
    """
    was_training = module.training
    module.eval()
    precision = trainer.precision_plugin.predict_step_context() if trainer is not None else nullcontext()
    try:
        with torch.no_grad(), precision:
            yield
    finally:
        module.train(was_training)


class SelfConsumingLoop(Callback):
    r"""Train a generative LightningModule on its own (corrected) samples, generation after generation.

    The LightningModule needs a ``sample(num_samples, *, generator=None, conditions=None)``
    method returning a tensor of ``num_samples`` new data points (the data field of an item).
    Everything else (``training_step``, optimizers, the DataModule) stays as it is.

    Args:
        synthetic_fraction: :math:`\lambda \ge 0`; each generation samples
            :math:`\lfloor \lambda n \rfloor` points, ``n`` the size of the real training set
            (``real_per_generation`` in ``fresh`` mode). May exceed 1.
        generations: :math:`T \ge 0`, the generations trained after generation 0.
        images_per_generation: training samples per generation, summed over ranks, drawn from
            the mixed set (rounded to whole batches on every rank, with a warning);
            ``None`` means one pass over the current mixed set.
        initial_images: the budget of generation 0 (default: ``images_per_generation``);
            ``0`` skips training generation 0 because the model is already trained.
        mode: ``"augment"`` (real and the latest synthetic set), ``"accumulate"`` (real and every
            synthetic set so far), ``"replace"`` (the latest synthetic set only) or ``"fresh"``
            (a new random subset of ``real_per_generation`` real items and the latest synthetic set).
        corrector: a :class:`~sclc_lightning.correctors.Corrector`, a registered name
            (``"optimal_transport"``, ``"kmeans"``, ...) or ``None``. With ``None`` a ``correct``
            method of the LightningModule is used if it has one, else no correction.
        corrector_kwargs: arguments of the registered corrector, e.g. ``{"strength": 1.0}``.
        output_dir: where synthetic data and the manifest go (default:
            ``<trainer.log_dir or default_root_dir>/synthetic``). With DDP over several nodes it
            must be a shared filesystem.
        seed: every random draw of generation ``t`` on rank ``r`` is seeded from
            ``(seed, t, r)``; the global torch/numpy/random generators are reseeded at the start
            of each generation, so a resumed run continues exactly as an uninterrupted one.
        sample_batch_size: points per ``sample`` call.
        real_per_generation: size of each generation's real subset in ``fresh`` mode (required
            there, invalid elsewhere).
        max_synthetic: in ``accumulate`` mode, cap the synthetic pool at this size by uniform
            subsampling (Kazdan et al. 2024); ``None`` keeps everything.
        data_field: the generated field of tuple/dict items (default: position 0, or the first
            tensor-valued key).
        condition_field: the field passed to ``sample(..., conditions=...)`` (labels, prompts),
            ``None`` for unconditional models.
        shard_rows: rows per safetensors shard on disk.

    Raises:
        ValueError: an argument is out of range; the message names it and its value.

    Examples:
        >>> loop = SelfConsumingLoop(synthetic_fraction=0.5, generations=3, images_per_generation=256)
        >>> trainer = pl.Trainer(callbacks=[loop], max_epochs=-1)  # doctest: +SKIP
        >>> trainer.fit(model, datamodule=datamodule)  # doctest: +SKIP
    """

    def __init__(
        self,
        synthetic_fraction: float,
        generations: int,
        images_per_generation: int | None = None,
        initial_images: int | None = None,
        mode: str = "augment",
        corrector: Corrector | str | None = None,
        corrector_kwargs: dict[str, Any] | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        sample_batch_size: int = 1024,
        real_per_generation: int | None = None,
        max_synthetic: int | None = None,
        data_field: FieldKey = None,
        condition_field: FieldKey = None,
        shard_rows: int = 65536,
    ) -> None:
        if (
            isinstance(synthetic_fraction, bool)
            or not isinstance(synthetic_fraction, (int, float))
            or not math.isfinite(synthetic_fraction)
            or synthetic_fraction < 0
        ):
            raise ValueError(f"`synthetic_fraction` must be a finite number >= 0, got {synthetic_fraction!r}.")
        if not _is_int(generations) or generations < 0:
            raise ValueError(f"`generations` must be an integer >= 0, got {generations!r}.")
        _check_optional_count("images_per_generation", images_per_generation, 1)
        _check_optional_count("initial_images", initial_images, 0)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if mode == "fresh":
            if real_per_generation is None:
                raise ValueError("`real_per_generation` is required in mode 'fresh', got None.")
            _check_optional_count("real_per_generation", real_per_generation, 1)
        elif real_per_generation is not None:
            raise ValueError(
                f"`real_per_generation` is only used in mode 'fresh', got {real_per_generation!r} with mode {mode!r}."
            )
        _check_optional_count("max_synthetic", max_synthetic, 0)
        if max_synthetic is not None and mode != "accumulate":
            raise ValueError(
                f"`max_synthetic` is only used in mode 'accumulate', got {max_synthetic!r} with mode {mode!r}."
            )
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}.")
        _check_optional_count("sample_batch_size", sample_batch_size, 1)
        _check_optional_count("shard_rows", shard_rows, 1)
        if mode == "replace" and synthetic_fraction == 0 and generations > 0:
            raise ValueError(
                "`synthetic_fraction` must be > 0 in mode 'replace' (later generations train on"
                f" synthetic data only), got {synthetic_fraction!r}."
            )
        if initial_images == 0 and generations == 0:
            raise ValueError("`initial_images=0` skips generation 0, so `generations` must be >= 1, got 0.")
        self.synthetic_fraction = float(synthetic_fraction)
        self.generations = int(generations)
        self.images_per_generation = images_per_generation
        self.initial_images = images_per_generation if initial_images is None else initial_images
        self.mode = mode
        self.corrector = make_corrector(corrector, corrector_kwargs)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.seed = int(seed)
        self.sample_batch_size = int(sample_batch_size)
        self.real_per_generation = real_per_generation
        self.max_synthetic = max_synthetic
        self.data_field = data_field
        self.condition_field = condition_field
        self.shard_rows = int(shard_rows)

        self.history: list[GenerationRecord] = []
        self._first_generation = 0 if self.initial_images != 0 else 1
        self._active_corrector: Corrector | None = self.corrector
        self._corrector_ready = False
        self._store: SyntheticStore | None = None
        self._run_id: str | None = None
        self._restored: dict[str, Any] | None = None
        self._real: RealData | None = None
        self._loader_template: DataLoader[Any] | None = None
        self._generations_on_disk: dict[int, dict[str, Any]] = {}
        self._synthetic_sets: dict[int, SyntheticSet] = {}
        self._fit_started = False
        self._saved_trainer_settings: dict[str, Any] | None = None
        self._current: dict[str, Any] = {}
        self._announced_reuse: int | None = None

    # ------------------------------------------------------------------ configuration -----
    @property
    def num_epochs(self) -> int:
        """Lightning epochs the fit runs: one per trained generation."""
        return self.generations + 1 - self._first_generation

    def generation_of_epoch(self, epoch: int) -> int:
        """The generation trained in Lightning epoch ``epoch``."""
        return epoch + self._first_generation

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it resumes."""
        corrector = self._active_corrector.describe() if self._active_corrector else None
        return {
            "synthetic_fraction": self.synthetic_fraction,
            "mode": self.mode,
            "corrector": corrector,
            "seed": self.seed,
            "real_per_generation": self.real_per_generation,
            "max_synthetic": self.max_synthetic,
        }

    @property
    def state_key(self) -> str:
        return "SelfConsumingLoop"

    # ------------------------------------------------------------------ hooks --------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        sample = getattr(pl_module, "sample", None)
        if not callable(sample):
            raise TypeError(
                f"SelfConsumingLoop needs a `sample(num_samples, *, generator=None, conditions=None)`"
                f" method on the LightningModule; {type(pl_module).__name__} has none."
            )
        params = inspect.signature(sample).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._sample_kwargs = {name for name in ("generator", "conditions") if name in params or takes_kwargs}
        if self.condition_field is not None and "conditions" not in self._sample_kwargs:
            raise TypeError(
                f"`condition_field` is {self.condition_field!r} but {type(pl_module).__name__}.sample"
                " takes no `conditions` argument."
            )
        if trainer.limit_train_batches != 1.0:
            raise ValueError(
                "SelfConsumingLoop sets the training budget itself: `Trainer(limit_train_batches=...)`"
                f" must be 1.0, got {trainer.limit_train_batches!r}; use `images_per_generation`."
            )
        if trainer.max_steps != -1:
            rank_zero_warn(
                f"`Trainer(max_steps={trainer.max_steps})` may stop the fit before the last of"
                f" the {self.generations} generations."
            )
        # A callback may serve several fits: forget what the previous one read.
        self._real, self._loader_template, self._restored = None, None, None
        self._synthetic_sets, self._corrector_ready = {}, False
        self._active_corrector = self.corrector
        if self.corrector is None and callable(getattr(pl_module, "correct", None)):
            self._active_corrector = ModuleCorrector(pl_module)
        self._saved_trainer_settings = {
            "reload_dataloaders_every_n_epochs": compat.get_reload_every_n_epochs(trainer),
            "max_epochs": trainer.fit_loop.max_epochs,
        }
        compat.set_reload_every_n_epochs(trainer, 1)
        trainer.fit_loop.max_epochs = self.num_epochs
        compat.install_train_source(trainer, lambda: self._train_dataloader(trainer, pl_module))

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure_real(trainer)
        self._open_store(trainer)
        compat.invalidate_train_dataloader(trainer)
        self._fit_started = True
        rank_zero_info(
            f"SelfConsumingLoop: n={self.n} real items, {self.num_synthetic} synthetic per generation,"
            f" generations {self._first_generation}..{self.generations} (one epoch each), mode"
            f" {self.mode!r}, corrector {self._describe_corrector()}, data in {self._store_root}."
        )

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._current["train_start"] = time.perf_counter()
        self._current["validation_s"] = 0.0

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == 0:
            # Lightning's bar says "Epoch e"; one epoch is one generation here. The bar names its
            # epoch after this callback's epoch hook, so rename it at the first batch.
            text = f"Generation {self.generation_of_epoch(trainer.current_epoch)}/{self.generations}"
            compat.describe_train_progress(trainer.progress_bar_callback, text)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._current["validation_start"] = time.perf_counter()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = self._current.pop("validation_start", None)
        if start is not None and "validation_s" in self._current:
            self._current["validation_s"] += time.perf_counter() - start

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = self.generation_of_epoch(trainer.current_epoch)
        start = self._current.get("train_start")
        training_s = 0.0 if start is None else time.perf_counter() - start - self._current["validation_s"]
        record = GenerationRecord(
            generation=generation,
            num_real=self._current.get("num_real", 0),
            num_synthetic=self._current.get("num_synthetic", 0),
            num_trained=self._current.get("num_trained", 0),
            time_sampling_s=self._current.get("time_sampling_s", 0.0),
            time_correcting_s=self._current.get("time_correcting_s", 0.0),
            time_training_s=training_s,
        )
        self.history.append(record)
        if trainer.is_global_zero:
            # Straight to the loggers, as LearningRateMonitor does: one row per generation at
            # the current step, without the cost of `LightningModule.log` bookkeeping.
            metrics = {k: float(v) for k, v in asdict(record).items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        rank_zero_info(
            f"SelfConsumingLoop: generation {generation} trained on {record.num_trained} samples from"
            f" {record.num_real} real + {record.num_synthetic} synthetic items in {training_s:.1f} s."
        )

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_trainer(trainer)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_trainer(trainer)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "run_id": self._run_id,
            "fingerprint": self.fingerprint(),
            "output_dir": None if self._store is None else str(self._store.root),
            "last_generation": self.history[-1].generation if self.history else None,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("format") != STATE_FORMAT:
            raise ValueError(
                f"Checkpoint holds SelfConsumingLoop state format {state_dict.get('format')!r};"
                f" this version reads format {STATE_FORMAT}."
            )
        self._restored = dict(state_dict)

    # ------------------------------------------------------------------ internals ----------
    def _describe_corrector(self) -> str:
        if self._active_corrector is None:
            return "none"
        d = self._active_corrector.describe()
        return f"{d['name']} (strength {d['strength']})"

    def _restore_trainer(self, trainer: pl.Trainer) -> None:
        compat.restore_train_source(trainer)
        if self._saved_trainer_settings is not None:
            compat.set_reload_every_n_epochs(trainer, self._saved_trainer_settings["reload_dataloaders_every_n_epochs"])
            trainer.fit_loop.max_epochs = self._saved_trainer_settings["max_epochs"]
            self._saved_trainer_settings = None
        self._fit_started = False

    @property
    def n(self) -> int:
        """``n``: the size of the real training set (``real_per_generation`` in fresh mode)."""
        if self.real_per_generation is not None:
            return self.real_per_generation
        if self._real is None:
            raise RuntimeError("`n` is known once fitting has started.")
        return len(self._real)

    @property
    def real_data(self) -> RealData:
        """The real training data, as correctors see it (known once fitting has started)."""
        if self._real is None:
            raise RuntimeError("`real_data` is known once fitting has started.")
        return self._real

    @property
    def num_synthetic(self) -> int:
        r""":math:`\lfloor \lambda n \rfloor`."""
        return num_synthetic(self.synthetic_fraction, self.n)

    @property
    def _store_root(self) -> Path:
        assert self._store is not None
        return self._store.root

    def _ensure_real(self, trainer: pl.Trainer) -> RealData:
        if self._real is not None:
            return self._real
        loader = compat.request_train_dataloader(trainer)
        if not isinstance(loader, DataLoader):
            raise TypeError(
                f"SelfConsumingLoop needs the train dataloader to be a torch DataLoader, got {type(loader).__name__}."
            )
        dataset = loader.dataset
        if isinstance(dataset, IterableDataset):
            raise TypeError("SelfConsumingLoop needs a map-style real dataset, got an IterableDataset.")
        size = len(dataset)  # type: ignore[arg-type]
        if size == 0:
            raise ValueError("The real training set is empty (the train dataloader's dataset has 0 items).")
        if self.real_per_generation is not None and self.real_per_generation > size:
            raise ValueError(
                f"`real_per_generation` must be at most the size of the real pool ({size}),"
                f" got {self.real_per_generation}."
            )
        if loader.batch_size is None and getattr(loader.batch_sampler, "batch_size", None) is None:
            raise ValueError("SelfConsumingLoop needs the train dataloader's batch size; it has none.")
        codec = ItemCodec.infer(dataset[0], self.data_field, self.condition_field)
        self._loader_template = loader
        self._real = RealData(dataset, codec)
        return self._real

    def _open_store(self, trainer: pl.Trainer) -> None:
        restored = self._restored or {}
        if restored:
            old, new = restored["fingerprint"], self.fingerprint()
            changed = {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}
            if changed:
                details = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in changed.items())
                raise ValueError(f"Cannot resume a self-consuming run with changed settings ({details}).")
        if self.output_dir is not None:
            root = self.output_dir
        elif restored.get("output_dir"):
            root = Path(restored["output_dir"])
        else:
            root = Path(trainer.log_dir or trainer.default_root_dir) / "synthetic"
        root = Path(trainer.strategy.broadcast(str(root), src=0))
        self._store = SyntheticStore(root)
        run_id = restored.get("run_id")
        # Global rank zero inspects the folder and decides for every rank, so that no rank can
        # see a manifest another rank has just written.
        problem: str | None = None
        fresh = False
        if trainer.is_global_zero:
            manifest = self._store.read_manifest()
            fresh = manifest is None
            if manifest is not None and run_id is not None and manifest["run_id"] != run_id:
                problem = (
                    f"{self._store.manifest_path} belongs to run {manifest['run_id']}, the checkpoint to run"
                    f" {run_id}; pass the run's own `output_dir`."
                )
            elif manifest is not None and run_id is None:
                problem = (
                    f"`output_dir` {str(root)!r} already holds the synthetic data of run {manifest['run_id']};"
                    " use a new `output_dir` or resume that run from its checkpoint (`ckpt_path`)."
                )
        problem, fresh = trainer.strategy.broadcast((problem, fresh), src=0)
        if problem is not None:
            raise ValueError(problem)
        if run_id is None:
            run_id = trainer.strategy.broadcast(uuid.uuid4().hex, src=0)
        self._run_id = run_id
        if fresh and trainer.is_global_zero:
            self._store.write_manifest(self._new_manifest())
        trainer.strategy.barrier("sclc_manifest")
        manifest = self._store.read_manifest()
        if manifest is None:
            raise FileNotFoundError(
                f"{self._store.manifest_path} is missing on rank {trainer.global_rank}; with several"
                " nodes `output_dir` must be on a filesystem shared by all of them."
            )
        self._generations_on_disk = {int(r["generation"]): r for r in manifest["generations"]}

    def _new_manifest(self) -> dict[str, Any]:
        assert self._real is not None
        return {
            "run_id": self._run_id,
            "config": {
                **self.fingerprint(),
                "generations": self.generations,
                "images_per_generation": self.images_per_generation,
                "initial_images": self.initial_images,
                "n": self.n,
            },
            "item": self._real.codec.to_json(),
            "generations": [],
        }

    def _reseed(self, generation: int, rank: int, purpose: str = "train") -> None:
        seed = derive_seed(self.seed, purpose, generation, rank)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    @contextmanager
    def _forked_rng(self, generation: int, rank: int, device: torch.device) -> Iterator[None]:
        """Seed the global generators for sampling and restore them afterwards, so that
        sampling (or a model that ignores ``generator``) never shifts training randomness."""
        devices = [device] if device.type == "cuda" else []
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=devices):
            self._reseed(generation, rank, purpose="sample")
            try:
                yield
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)

    # -- the provider: called by Lightning at the start of every epoch --------------------
    def _train_dataloader(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> DataLoader[Any]:
        real = self._ensure_real(trainer)
        template = self._loader_template
        assert template is not None
        if not self._fit_started:
            # Asked before fitting (e.g. `trainer.estimated_stepping_batches` in
            # `configure_optimizers`): a loader of the right length, dropped at fit start.
            generation, plan = 0, plan_generation(self.mode, 0, len(real), {}, self.seed, self.real_per_generation)
        else:
            generation = self.generation_of_epoch(compat.epoch_being_loaded(trainer))
            if generation > self.generations:
                return DataLoader([], batch_size=1)  # type: ignore[arg-type]
            self._current = {"time_sampling_s": 0.0, "time_correcting_s": 0.0}
            if generation >= 1 and self.num_synthetic > 0:
                with self._forked_rng(generation, trainer.global_rank, pl_module.device):
                    self._ensure_generation(trainer, pl_module, generation)
            counts = {g: int(r["count"]) for g, r in self._generations_on_disk.items() if g <= generation}
            plan = plan_generation(
                self.mode, generation, len(real), counts, self.seed, self.real_per_generation, self.max_synthetic
            )
        dataset: Dataset[Any]
        if plan.use_real and plan.real_indices is None and not plan.synthetic:
            dataset = real.dataset  # real data only: serve it without the mixing indirection
        else:
            dataset = MixedDataset(real.dataset, plan, self._synthetic_sets_for(plan))
        num_real = plan.num_real(len(real))
        size = len(dataset)  # type: ignore[arg-type]
        trains_generation_zero = generation == 0 and self._first_generation == 0
        requested = self.initial_images if trains_generation_zero else self.images_per_generation
        batch_size = template.batch_size or template.batch_sampler.batch_size  # type: ignore[union-attr]
        budget = resolve_budget(requested, size, batch_size, trainer.world_size, template.drop_last)
        if not budget.exact and self._fit_started:
            rank_zero_warn(
                f"Generation {generation}: {requested} training samples is not a whole number of"
                f" batches ({batch_size}) x ranks ({trainer.world_size}); training on {budget.total}."
            )
        order_gen = make_generator(self.seed, "order", generation)
        if requested is None:
            order = torch.randperm(size, generator=order_gen)[: budget.per_rank * trainer.world_size]
        else:
            order = budget_order(size, budget.total, order_gen)
        if self._fit_started:
            self._current.update(num_real=num_real, num_synthetic=size - num_real, num_trained=budget.total)
        sampler = GenerationSampler(order, trainer.world_size, trainer.global_rank)
        workers = template.num_workers
        if self._fit_started:
            self._reseed(generation, trainer.global_rank)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=template.collate_fn,
            num_workers=workers,
            pin_memory=template.pin_memory,
            drop_last=template.drop_last if requested is None else False,
            timeout=template.timeout,
            worker_init_fn=template.worker_init_fn,
            multiprocessing_context=template.multiprocessing_context if workers else None,
            generator=make_generator(self.seed, "loader", generation, trainer.global_rank),
            prefetch_factor=template.prefetch_factor if workers else None,
            persistent_workers=template.persistent_workers if workers else False,
        )

    def _synthetic_sets_for(self, plan: GenerationPlan) -> dict[int, Dataset[Any]]:
        assert self._store is not None and self._real is not None
        sets: dict[int, Dataset[Any]] = {}
        for g, _ in plan.synthetic:
            if g not in self._synthetic_sets:
                record = self._generations_on_disk[g]
                shards = [(name, int(rows)) for name, rows in record["shards"]]
                self._synthetic_sets[g] = self._store.open_generation(g, shards, self._real.codec)
            sets[g] = self._synthetic_sets[g]
        return sets

    # -- producing one generation's synthetic data ----------------------------------------
    def _reusable(self, generation: int, step: int) -> bool:
        record = self._generations_on_disk.get(generation)
        return (
            record is not None
            and record.get("sampled_at_step") == step
            and record.get("fingerprint") == self.fingerprint()
        )

    def _ensure_generation(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> None:
        assert self._store is not None
        step = trainer.global_step
        if self._reusable(generation, step):
            record = self._generations_on_disk[generation]
            self._current.update(
                time_sampling_s=record["seconds_sampling"], time_correcting_s=record["seconds_correcting"]
            )
            if self._announced_reuse != generation:
                rank_zero_info(f"SelfConsumingLoop: generation {generation} reuses its synthetic data on disk.")
                self._announced_reuse = generation
            return
        world, rank = trainer.world_size, trainer.global_rank
        error: BaseException | None = None
        local: SyntheticBatch | None = None
        start = time.perf_counter()
        try:
            local = self._sample_share(trainer, pl_module, generation)
            if world > 1:
                self._store.write_exchange(generation, rank, {"data": local.data, "source_index": local.source_index})
        except Exception as err:  # reported to every rank below
            error = err
        self._agree(trainer, error)
        sampling_s = time.perf_counter() - start
        rank_zero_info(
            f"SelfConsumingLoop: sampled {self.num_synthetic} points for generation {generation} in {sampling_s:.1f} s."
        )
        if trainer.is_global_zero:
            try:
                assert local is not None
                if world > 1:
                    parts = [self._store.read_exchange(generation, r) for r in range(world)]
                    local = SyntheticBatch(
                        torch.cat([p["data"] for p in parts]), torch.cat([p["source_index"] for p in parts])
                    )
                    assert self._real is not None
                    local.conditions = self._real.conditions_of(local.source_index)
                    self._store.clear_exchange(generation, world)
                self._write_generation(generation, local, step, sampling_s, trainer.progress_bar_callback is not None)
            except Exception as err:
                error = err
        self._agree(trainer, error)
        manifest = self._store.read_manifest()
        assert manifest is not None
        self._generations_on_disk = {int(r["generation"]): r for r in manifest["generations"]}
        self._synthetic_sets = {g: s for g, s in self._synthetic_sets.items() if g < generation}
        record = self._generations_on_disk[generation]
        self._current.update(time_sampling_s=sampling_s, time_correcting_s=record["seconds_correcting"])

    def _sample_share(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> SyntheticBatch:
        """Sample this rank's share of generation ``generation``'s synthetic points."""
        real = self._real
        assert real is not None
        total = self.num_synthetic
        pool = len(real)
        templates = _draw_indices(pool, total, make_generator(self.seed, "templates", generation))
        share = templates[rank_slice(total, trainer.world_size, trainer.global_rank)]
        generator = make_generator(self.seed, "sample", generation, trainer.global_rank)
        device = pl_module.device
        if device.type != "cpu":
            generator = torch.Generator(device=device).manual_seed(
                derive_seed(self.seed, "sample", generation, trainer.global_rank)
            )
        codec = real.codec
        sample = getattr(pl_module, "sample")  # noqa: B009 - LightningModule.__getattr__ is typed as Tensor | Module
        chunks: list[SyntheticBatch] = []
        mixed_precision = str(trainer.precision).endswith("-mixed")
        show = trainer.is_global_zero and trainer.progress_bar_callback is not None
        with (
            eval_mode(pl_module, trainer),
            tqdm(total=len(share), desc=f"Sampling generation {generation}", disable=not show, leave=False) as bar,
        ):
            for start in range(0, len(share), self.sample_batch_size):
                index = share[start : start + self.sample_batch_size]
                kwargs: dict[str, Any] = {}
                if "generator" in self._sample_kwargs:
                    kwargs["generator"] = generator
                conditions = real.conditions_of(index)
                if conditions is not None:
                    kwargs["conditions"] = self._move(conditions, device)
                out = sample(len(index), **kwargs)
                where = f"generation {generation}, {type(pl_module).__name__}.sample"
                points = self._check_points(out, len(index), where, upcast=mixed_precision)
                chunks.append(SyntheticBatch(points.cpu(), index, conditions))
                bar.update(len(index))
        if not chunks:  # a rank whose share is empty (fewer points than ranks)
            return SyntheticBatch(torch.empty((0, *codec.data_shape), dtype=codec.data_dtype), share)
        return SyntheticBatch.concat(chunks)

    @staticmethod
    def _move(value: Any, device: torch.device) -> Any:
        return value.to(device) if isinstance(value, Tensor) else value

    def _check_points(self, points: Any, count: int, where: str, upcast: bool = False) -> Tensor:
        """``points`` if they fit the real data field; ``upcast``: half-precision floats (the
        autocast output of a mixed-precision trainer) are converted to the data's float dtype."""
        codec = self._real.codec  # type: ignore[union-attr]
        if not isinstance(points, Tensor):
            raise SyntheticDataError(f"{where} must return a tensor, got {type(points).__name__}.")
        expected = (count, *codec.data_shape)
        if tuple(points.shape) != expected:
            raise SyntheticDataError(
                f"{where} returned shape {tuple(points.shape)}, expected {expected} ({count} points"
                f" shaped like the real data field)."
            )
        half = (torch.float16, torch.bfloat16)
        if upcast and points.dtype in half and codec.data_dtype.is_floating_point and codec.data_dtype not in half:
            points = points.to(codec.data_dtype)
        if points.dtype != codec.data_dtype:
            raise SyntheticDataError(f"{where} returned dtype {points.dtype}, the real data is {codec.data_dtype}.")
        if points.is_floating_point() and not bool(torch.isfinite(points).all()):
            bad = (
                int((~torch.isfinite(points)).flatten(1).any(1).sum())
                if points.dim() > 1
                else int((~torch.isfinite(points)).sum())
            )
            raise SyntheticDataError(f"{where} returned {bad} points with non-finite values.")
        return points

    def _write_generation(
        self, generation: int, batch: SyntheticBatch, step: int, sampling_s: float, trainer_shows_progress: bool = False
    ) -> None:
        """Correct, validate and store generation ``generation`` (global rank zero only)."""
        assert self._store is not None and self._real is not None
        real = self._real
        start = time.perf_counter()
        corrector = self._active_corrector
        name = self._describe_corrector()
        if corrector is not None:
            if not self._corrector_ready:
                corrector.setup(real, make_generator(self.seed, "corrector_setup", 0))
                self._corrector_ready = True
            rank_zero_info(f"SelfConsumingLoop: correcting generation {generation} with {name}.")
            corrector.show_progress = trainer_shows_progress
            out = corrector.correct(
                batch, generation=generation, generator=make_generator(self.seed, "correct", generation), reference=real
            )
            where = f"generation {generation}, corrector {name}"
            if isinstance(out, SyntheticBatch):
                self._check_points(out.data, len(batch), where)
                if tuple(out.source_index.shape) != (len(batch),):
                    raise SyntheticDataError(f"{where} returned {tuple(out.source_index.shape)} source indices.")
                batch = out
            else:
                batch = batch.with_data(self._check_points(out, len(batch), where))
        correcting_s = time.perf_counter() - start
        if corrector is not None:
            rank_zero_info(f"SelfConsumingLoop: corrected generation {generation} in {correcting_s:.1f} s.")
        fields, strings = (
            real.codec.encode_fields(real.items(batch.source_index.tolist())) if (real.codec.other_keys) else ({}, {})
        )
        tensors = {"data": batch.data, "source_index": batch.source_index.to(torch.int64), **fields}
        shards = self._store.write_generation(generation, tensors, strings, self.shard_rows)
        described = corrector.describe() if corrector else {"name": None, "strength": 0.0}
        record = {
            "generation": generation,
            "count": len(batch),
            "mode": self.mode,
            "synthetic_fraction": self.synthetic_fraction,
            "corrector": described["name"],
            "strength": described["strength"],
            "seed": self.seed,
            "sampled_at_step": step,
            "fingerprint": self.fingerprint(),
            "shards": [[name, rows] for name, rows in shards],
            "seconds_sampling": sampling_s,
            "seconds_correcting": correcting_s,
        }
        manifest = self._store.read_manifest() or self._new_manifest()
        # Generations after this one came from a history that is being redone: drop them.
        manifest["generations"] = [r for r in manifest["generations"] if int(r["generation"]) < generation]
        manifest["generations"].append(record)
        self._store.write_manifest(manifest)

    def _agree(self, trainer: pl.Trainer, error: BaseException | None) -> None:
        """Raise the same error on every rank if any rank failed (never hang at a barrier)."""
        if trainer.world_size == 1:
            if error is not None:
                raise error
            return
        flag = torch.tensor([0 if error is None else 1], device=trainer.strategy.root_device)
        flags = trainer.strategy.all_gather(flag).reshape(-1)
        failed = torch.nonzero(flags).flatten().tolist()
        if not failed:
            return
        source = int(failed[0])
        message = f"{type(error).__name__}: {error}" if error is not None else None
        message = trainer.strategy.broadcast(message, src=source)
        raise SyntheticDataError(f"rank {source} failed: {message}") from error


def find_loop(trainer: pl.Trainer) -> SelfConsumingLoop | None:
    """The trainer's :class:`SelfConsumingLoop` callback, if it has one."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    return next((c for c in callbacks if isinstance(c, SelfConsumingLoop)), None)


def current_generation(trainer: pl.Trainer) -> int:
    """The generation the current epoch trains (the epoch itself when there is no loop)."""
    loop = find_loop(trainer)
    return trainer.current_epoch if loop is None else loop.generation_of_epoch(trainer.current_epoch)
