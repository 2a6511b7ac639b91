r"""Correction in weight space: at a generation's end, change the model's weights instead of its
data.

A :class:`ModelCorrector` receives the module, samples the loop drew from it for this purpose
(a corrector cannot call the sampler), the reference weights :math:`\theta_r` and a generator,
and returns new weights. The loop applies them before sampling the next generation, on every
rank alike; the run's optimizer and scheduler states are not touched.

Neon (Alemohammad et al. 2025, "Neon: Negative Extrapolation From Self-Training Improves Image
Generation") is the first: fine-tune a copy of the model on its own samples to :math:`\theta_s`,
then step the other way, :math:`\theta = (1 + w)\,\theta_r - w\,\theta_s`. The self-training
direction shows the sampler's bias (e.g. a temperature below 1 makes the refit narrower), and
stepping against it undoes it.
"""

from __future__ import annotations

import abc
import copy
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, POSITIVE, Range, bounded, check_arguments, plain_numbers
from sclc_lightning._registry import Registry
from sclc_lightning._settings import declared_settings

__all__ = [
    "ModelCorrector",
    "NeonCorrector",
    "available_model_correctors",
    "get_model_corrector_class",
    "make_model_corrector",
    "register_model_corrector",
]

M = TypeVar("M", bound="type[ModelCorrector]")


class ModelCorrector(abc.ABC):
    """Base class of weight-space correctors. Override :meth:`correct_model`.

    Attributes:
        num_samples: how many points the loop samples for it at each generation's end.
    """

    name: ClassVar[str] = ""
    #: Constructor arguments that decide the new weights (recorded, compared on resume).
    deciding: ClassVar[tuple[str, ...] | None] = None
    #: Constructor arguments that do not.
    operational: ClassVar[tuple[str, ...]] = ()
    #: Where its numeric constructor arguments must lie (``check_arguments(Class, locals())``
    #: checks them; the docs' settings tables show them).
    ranges: ClassVar[Mapping[str, Range]] = bounded()
    num_samples: int = 0

    @abc.abstractmethod
    def correct_model(
        self,
        module: Any,
        *,
        items: Sequence[Any],
        collate: Callable[[list[Any]], Any],
        reference: dict[str, Tensor],
        generation: int,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """The module's new state dict.

        Args:
            module: the LightningModule (do not train it in place: work on a copy).
            items: ``num_samples`` synthetic items, built as the training set's would be.
            collate: the training loader's ``collate_fn``.
            reference: the reference weights :math:`\\theta_r` (a state dict on the CPU).
            generation: the generation that has just ended.
            generator: a CPU generator seeded from (seed, generation), the same on every rank.
        """

    def check_module(self, module: Any) -> None:  # noqa: B027
        """Refuse, before generation 0 trains, a module this corrector cannot work on (override;
        raise a ``ValueError`` naming the module and the fix)."""

    def settings(self) -> dict[str, Any]:
        """The deciding constructor arguments, JSON-safe."""
        return declared_settings(self, self.deciding, self.operational)

    def describe(self) -> dict[str, Any]:
        """The name and :meth:`settings`, recorded in the manifest and the checkpoint."""
        return {"name": self.name or type(self).__name__, **self.settings()}


_REGISTRY: Registry[ModelCorrector] = Registry(
    "model corrector", ModelCorrector, "model_corrector", package="sclc_lightning.correctors"
)


def register_model_corrector(name: str) -> Callable[[M], M]:
    """Class decorator registering a :class:`ModelCorrector` under ``name``."""
    return _REGISTRY.register(name)


def available_model_correctors() -> list[str]:
    """Registered model corrector names.

    Examples:
        >>> "neon" in available_model_correctors()
        True
    """
    return _REGISTRY.names()


def get_model_corrector_class(name: str) -> type[ModelCorrector]:
    """The class registered as ``name``."""
    return _REGISTRY.get(name)


def make_model_corrector(
    corrector: ModelCorrector | str | None, kwargs: dict[str, Any] | None = None
) -> ModelCorrector | None:
    """Resolve the loop's ``model_corrector`` argument (``None`` stays ``None``)."""
    if corrector is None:
        if kwargs:
            raise ValueError(f"`model_corrector_kwargs` needs a `model_corrector`, got {kwargs!r} without one.")
        return None
    return _REGISTRY.make(corrector, kwargs)


def _detached_copy(module: Any) -> Any:
    """A deep copy of ``module`` without its trainer (which must not be copied)."""
    trainer = getattr(module, "_trainer", None)
    module._trainer = None
    try:
        return copy.deepcopy(module)
    finally:
        module._trainer = trainer


def _read_weights(path: Path) -> tuple[dict[str, Tensor], str]:
    """The state dict in ``path`` (``.safetensors``, or a Lightning ``.ckpt``'s ``state_dict``,
    loaded with ``weights_only=True``) on the CPU, and the file's SHA-256.

    Raises:
        ValueError: the file is missing, not a regular file, or holds no state dict; naming it.
    """
    from sclc_lightning._files import NotARegularFile, read_regular, sha256_bytes

    try:
        data = read_regular(path)
    except (OSError, NotARegularFile) as err:
        raise ValueError(f"Neon's `reference` {path} cannot be read: {err}") from None
    try:
        weights: Any
        if path.suffix == ".safetensors":
            from safetensors.torch import load

            weights = load(data)
        else:
            checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            weights = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    except Exception as err:  # a damaged file, or one that is not a checkpoint
        raise ValueError(
            f"Neon's `reference` {path} is not a .safetensors state dict or a Lightning checkpoint: {err}"
        ) from None
    if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise ValueError(f"Neon's `reference` {path} holds no state dict of tensors.")
    return {k: v.detach().cpu() for k, v in weights.items()}, sha256_bytes(data)


def weights_problem(module: Any, weights: dict[str, Tensor]) -> str | None:
    """What is wrong with ``weights`` for ``module``, or ``None``: a key it does not have or lacks,
    another shape, a floating-point entry for an integer one (or the reverse), a non-finite
    value, or a value the model says it cannot hold (its ``validate_weights(state_dict)``
    raising ``ValueError``, e.g. :class:`~sclc_lightning.models.GaussianModel`'s negative variance).

    Examples:
        >>> from sclc_lightning.models import GaussianModel
        >>> weights = GaussianModel(dim=1).state_dict()
        >>> weights["cov"] = torch.tensor([[-1.0]])
        >>> weights_problem(GaussianModel(dim=1), weights)
        'cov: the covariance is not positive semi-definite (smallest eigenvalue -1)'
    """
    own = module.state_dict()
    if set(weights) != set(own):
        missing, extra = sorted(set(own) - set(weights))[:3], sorted(set(weights) - set(own))[:3]
        return f"other keys (missing {missing}, unexpected {extra})"
    for key, value in own.items():
        given = weights[key]
        if tuple(given.shape) != tuple(value.shape):
            return f"{key} has shape {tuple(given.shape)}, the model's {tuple(value.shape)} (another architecture)"
        if given.is_floating_point() != value.is_floating_point():
            dtypes = (str(t.dtype).removeprefix("torch.") for t in (given, value))
            return "{} is {}, the model's {}".format(key, *dtypes)
        if given.is_floating_point() and not bool(torch.isfinite(given).all()):
            bad = int((~torch.isfinite(given)).sum())
            return f"{key} holds {bad} non-finite values (NaN or inf)"
    validate = getattr(module, "validate_weights", None)
    if callable(validate):
        try:
            validate(weights)
        except ValueError as err:
            return str(err)
    return None


def check_weights_fit(module: Any, weights: dict[str, Tensor], what: str) -> None:
    """Refuse ``weights`` that ``module`` cannot take (:func:`weights_problem`), naming ``what``.

    Raises:
        ValueError: naming ``what``, the entry and the fix.
    """
    problem = weights_problem(module, weights)
    if problem is not None:
        raise ValueError(
            f"{what} does not hold weights {type(module).__name__} can take: {problem}; give a checkpoint of this"
            " model."
        )


@register_model_corrector("neon")
@plain_numbers
class NeonCorrector(ModelCorrector):
    r"""Negative extrapolation from self-training (Alemohammad et al. 2025).

    A copy of the model, set to the reference weights :math:`\theta_r` (the model at the
    generation's end), is trained on ``num_samples`` of its own samples to :math:`\theta_s`:

    - a model fitted in closed form (``batch_statistics`` and ``fit``, e.g. the exact Gaussian)
      is refitted on them;
    - any other takes ``steps`` steps of Adam (learning rate ``lr``, batches of ``batch_size``
      drawn with the loop's generator) on its own ``training_step``, with an optimizer of its
      own: the run's optimizer and scheduler states are untouched.

    The weights become :math:`\theta = (1 + w)\theta_r - w\theta_s` (floating-point entries of the
    state dict; integer buffers keep :math:`\theta_r`'s). Which :math:`w` undoes a bias depends on
    how the model is parameterised: see docs/model_correction.md.

    :math:`\theta_r` is the model at the generation's end (``reference="current"``), or the
    weights of a file the user keeps, e.g. generation 0's checkpoint: a Lightning ``.ckpt`` (its
    ``state_dict``, read without unpickling code) or a ``.safetensors`` state dict. The file's
    SHA-256 is recorded with the run's settings (the checkpoint's fingerprint): a resume whose
    file changed is refused. The fine-tuning always starts from :math:`\theta_r`.

    Args:
        weight: :math:`w`, how far the weights move away from the self-trained ones.
        num_samples: self-training samples per generation.
        steps: fine-tuning steps (gradient-trained models).
        lr: the fine-tuning learning rate.
        batch_size: the fine-tuning batch size.
        reference: ``"current"`` or the path of the reference weights.

    Examples:
        >>> NeonCorrector(weight=1.5625, num_samples=100_000).describe()["weight"]
        1.5625
    """

    deciding = ("weight", "num_samples", "steps", "lr", "batch_size", "reference")
    ranges = bounded(num_samples=COUNT, steps=COUNT, lr=POSITIVE, batch_size=COUNT)

    def __init__(
        self,
        weight: float,
        num_samples: int = 1000,
        steps: int = 100,
        lr: float = 1e-4,
        batch_size: int = 256,
        reference: str = "current",
    ) -> None:
        check_arguments(NeonCorrector, {**locals(), "reference": str(reference)})  # a Path: checked below
        if not isinstance(reference, (str, Path)) or not str(reference):
            raise ValueError(f"`reference` must be 'current' or the path of a weights file, got {reference!r}.")
        self.weight, self.num_samples, self.steps = float(weight), int(num_samples), int(steps)
        self.lr, self.batch_size, self.reference = float(lr), int(batch_size), str(reference)
        self._weights: dict[str, Tensor] | None = None
        self._digest = ""
        if reference != "current":
            self._weights, self._digest = _read_weights(Path(reference))

    def settings(self) -> dict[str, Any]:
        settings = super().settings()
        if self.reference != "current":  # the file's content, not only its name
            settings["reference"] = {"path": self.reference, "sha256": self._digest}
        return settings

    def check_module(self, module: Any) -> None:
        exact = callable(getattr(module, "batch_statistics", None)) and callable(getattr(module, "fit", None))
        if not exact and not getattr(module, "automatic_optimization", True):
            raise ValueError(
                f"Neon fine-tunes a copy of {type(module).__name__} with its `training_step` returning the loss, but"
                " the module optimizes manually (`automatic_optimization = False`); give it a training_step that"
                " returns the loss, or use another model corrector."
            )
        if self._weights is not None:
            check_weights_fit(module, self._weights, f"Neon's `reference` {self.reference}")

    def correct_model(
        self,
        module: Any,
        *,
        items: Sequence[Any],
        collate: Callable[[list[Any]], Any],
        reference: dict[str, Tensor],
        generation: int,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        if self._weights is not None:
            reference = {k: v.clone() for k, v in self._weights.items()}
        tuned = _detached_copy(module)
        tuned.load_state_dict(reference)
        if callable(getattr(tuned, "batch_statistics", None)) and callable(getattr(tuned, "fit", None)):
            statistics = [s.detach() for s in tuned.batch_statistics(collate(list(items)))]
            with torch.no_grad():
                tuned.fit(statistics)
        else:
            self._fine_tune(tuned, items, collate, generator)
        tuned_state = {k: v.detach().cpu() for k, v in tuned.state_dict().items()}
        w = self.weight
        corrected = {
            k: (1 + w) * r - w * tuned_state[k].to(r.dtype) if r.is_floating_point() else r.clone()
            for k, r in reference.items()
        }
        problem = weights_problem(module, corrected)
        if problem is not None:  # known only now: the extrapolation left what the model can hold
            raise ValueError(
                f"Neon's extrapolation at generation {generation} (weight {w}) gives weights"
                f" {type(module).__name__} cannot hold: {problem}. Lower `weight`, or raise `num_samples` so that the"
                " self-trained weights are less noisy."
            )
        return corrected

    def _fine_tune(
        self, tuned: Any, items: Sequence[Any], collate: Callable[[list[Any]], Any], generator: torch.Generator
    ) -> None:
        tuned.train()
        parameters = [p for p in tuned.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(parameters, lr=self.lr)
        for step in range(self.steps):
            index = torch.randint(len(items), (min(self.batch_size, len(items)),), generator=generator)
            batch = collate([items[i] for i in index.tolist()])
            with warnings.catch_warnings():  # the copy has no trainer: its `self.log` calls log nothing
                warnings.filterwarnings("ignore", message=r".*`self\.trainer` reference is not registered")
                out = tuned.training_step(batch, step)
            loss = out["loss"] if isinstance(out, dict) else out
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
