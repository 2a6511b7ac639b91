r"""Scores of synthetic points: the rewards of curation and the verifiers of selection.

A score gives one number per point. It is named in one of four ways:

- a registered name (:func:`register_score`), e.g. ``"model_log_prob"``: the log-density of each
  point under the model being trained (its ``log_prob(data)`` method), the selection of Qiao et
  al. (2026); or a mapping ``{"name": ..., **settings}`` for a registered score with settings,
  e.g. ``{"name": "linear_residual", "weights": [...]}``;
- a callable ``f(data, conditions) -> Tensor (m,)``;
- an import path ``"package.module:function"`` to such a callable (YAML);
- ``{"command": "program {input} {output}", ...}``: an external program, run like the
  :class:`~sclc_lightning.correctors.CommandCorrector` (same placeholders, files, timeout and
  process guarantees), that writes one value per point (a ``data`` tensor of shape ``(m,)``).
"""

from __future__ import annotations

import hashlib
import inspect
import shlex
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from sclc_lightning._callables import describe_callable, resolve_callable
from sclc_lightning._checks import check_keys
from sclc_lightning._registry import Registry
from sclc_lightning._settings import constructor_arguments, jsonable
from sclc_lightning.correctors.command import CommandCorrector
from sclc_lightning.items.codec import SyntheticBatch

__all__ = ["Score", "ScoreSpec", "available_scores", "register_score"]

ScoreSpec = str | Callable[..., Any] | Mapping[str, Any]
"""A registered name, a callable ``f(data, conditions)``, an import path, or ``{"command": ...}``."""

#: Registered scores: ``f(data, conditions, module, **settings) -> Tensor (m,)``.
_SCORES: Registry[Any] = Registry("score", None, "score", package="sclc_lightning.correctors")


def register_score(name: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Register ``f(data, conditions, module, **settings) -> Tensor (m,)`` under ``name``
    (``module``: the LightningModule being trained; ``settings``: those of a mapping spec).

    Examples:
        >>> @register_score("doc_negative_norm")
        ... def negative_norm(data, conditions, module):
        ...     return -data.flatten(1).norm(dim=1)
        >>> "doc_negative_norm" in available_scores()
        True
    """

    return _SCORES.register(name)


def available_scores() -> list[str]:
    """The registered score names."""
    return _SCORES.names()


def _check_log_prob(module: Any) -> None:
    if module is None:
        raise RuntimeError("The score 'model_log_prob' needs the model: the loop attaches it at set-up.")
    if not callable(getattr(module, "log_prob", None)):
        raise ValueError(
            f"The score 'model_log_prob' calls the model's `log_prob(data)`, and {type(module).__name__} has none;"
            " add one, or score with a callable (`package.module:function`)."
        )


#: What registered scores need of the module, checked before generation 0.
_MODULE_CHECKS: dict[str, Callable[[Any], None]] = {"model_log_prob": _check_log_prob}


@register_score("model_log_prob")
def model_log_prob(data: Tensor, conditions: Any, module: Any) -> Tensor:
    """The log-density of each point under the model being trained: ``module.log_prob(data)``
    (``module.log_prob(data, conditions)`` for a conditional loop), without gradients.

    Raises:
        TypeError: the module has no ``log_prob`` method.
    """
    _check_log_prob(module)
    method = module.log_prob
    device = getattr(module, "device", torch.device("cpu"))
    with torch.no_grad():
        inputs = data.to(device)
        out = method(inputs) if conditions is None else method(inputs, conditions)
    return torch.as_tensor(out).detach().cpu()


@register_score("linear_residual")
def linear_residual(data: Tensor, conditions: Any, module: Any, weights: list[float]) -> Tensor:
    r""":math:`-|y - x^\top \theta_c|` for items ``(x, y)`` (``x`` the condition, ``y`` the
    data): how well a synthetic target agrees with a verifier holding its own parameter
    :math:`\theta_c` = ``weights`` (Yi et al. 2026). Higher is better.

    Examples:
        >>> linear_residual(torch.tensor([[3.0]]), torch.tensor([[1.0, 1.0]]), None, weights=[1.0, 1.0]).tolist()
        [-1.0]
    """
    if not isinstance(conditions, Tensor):
        raise TypeError("The score 'linear_residual' needs the inputs x as conditions (the loop's `condition_field`).")
    theta = torch.tensor(weights, dtype=torch.float64)
    x = conditions.double().flatten(1)
    if x.shape[1] != theta.numel():
        raise ValueError(
            f"The score 'linear_residual' has {theta.numel()} weights for inputs of dimension {x.shape[1]}."
        )
    return -(data.double().reshape(len(x), -1)[:, 0] - x @ theta).abs()


class _CommandScore(CommandCorrector):
    """An external program that writes one value per point."""

    def _who(self) -> str:
        return f"score command `{shlex.join(self.command)}`"

    def scores(self, batch: SyntheticBatch, generation: int) -> Tensor:
        return self.run_program(batch, generation, self.load_output)


def _check_score_settings(argument: str, name: str, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Refuse settings the registered score ``name`` does not take (naming the nearest) and its
    required settings missing, where they are given rather than when the loop first scores.

    Raises:
        ValueError: naming ``argument``, the score and the setting.
    """
    parameters = list(inspect.signature(function).parameters.values())[3:]  # after data, conditions, module
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    check_keys(f"{argument}` score `{name}", options, [p.name for p in parameters])
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.name not in options]
    if missing:
        raise ValueError(
            f"`{argument}`: the score {name!r} needs the settings {missing}: give"
            f" {{'name': {name!r}, {', '.join(f'{m!r}: ...' for m in missing)}}}."
        )


class Score:
    """A resolved :data:`ScoreSpec`, called on a batch.

    Args:
        spec: what names the score (see the module's documentation).
        argument: the corrector's argument, for messages (``"reward"``, ``"verifier"``).

    Raises:
        ValueError: an unknown name, an import path that names nothing callable, or a command
            mapping without ``command``.

    Examples:
        >>> from sclc_lightning.items.codec import SyntheticBatch
        >>> score = Score(lambda data, conditions: -data.norm(dim=1), "reward")
        >>> score(SyntheticBatch(torch.tensor([[3.0, 4.0]]), torch.zeros(1, dtype=torch.long)), 1, None)
        tensor([-5.], dtype=torch.float64)
    """

    def __init__(self, spec: ScoreSpec, argument: str) -> None:
        self.argument = argument
        self.description: Any = None
        self._registered: Callable[..., Tensor] | None = None
        self._settings: dict[str, Any] = {}
        self._callable: Callable[..., Any] | None = None
        self._command: _CommandScore | None = None
        if spec is None:
            raise ValueError(
                f"`{argument}` is required: a callable, an import path 'package.module:function', a registered"
                f" score ({available_scores()}) or {{'command': ...}}, got None."
            )
        if isinstance(spec, Mapping) and "name" in spec:
            options = {k: v for k, v in spec.items() if k != "name"}
            if spec["name"] not in _SCORES:
                raise ValueError(f"`{argument}` names {spec['name']!r}, not a registered score ({available_scores()}).")
            self._registered, self._settings = _SCORES.get(spec["name"]), options
            _check_score_settings(argument, spec["name"], self._registered, options)
            self.description = jsonable(dict(spec))
        elif isinstance(spec, Mapping):
            options = dict(spec)
            if "command" not in options:
                raise ValueError(
                    f"`{argument}` as a mapping runs a program: it needs 'command', got {sorted(options)}."
                )
            check_keys(argument, options, [k for k in constructor_arguments(_CommandScore) if k != "strength"])
            try:
                self._command = _CommandScore(strength=float("inf"), **options)
            except ValueError as err:
                raise ValueError(f"`{argument}` {{'command': ...}}: {err}") from None
            # what decides the scores is recorded; timeouts and the like are operational
            secrets = sorted(options.get("env", {}).items())  # values may be secrets: a digest of each
            env = {k: hashlib.sha256(str(v).encode()).hexdigest()[:16] for k, v in secrets}
            deciding = {k: v for k, v in options.items() if k not in _CommandScore.operational and k != "env"}
            self.description = {**jsonable(deciding), "env": env}
        elif isinstance(spec, str) and spec in _SCORES:
            self._registered, self.description = _SCORES.get(spec), spec
            _check_score_settings(argument, spec, self._registered, {})
        elif isinstance(spec, str) and ":" not in spec and "." not in spec:
            raise ValueError(
                f"`{argument}` {spec!r} is not a registered score ({available_scores()}); give a callable, an import"
                " path 'package.module:function' or {'command': ...}."
            )
        else:
            self._callable = resolve_callable(spec, argument)  # type: ignore[arg-type]
            self.description = describe_callable(spec, self._callable)

    def check_module(self, module: Any) -> None:
        """Refuse, before generation 0, a module a registered score cannot use (no ``log_prob``).

        Raises:
            ValueError: naming the score, the module and the fix.
        """
        name = self.description.get("name") if isinstance(self.description, dict) else self.description
        check = _MODULE_CHECKS.get(name) if isinstance(name, str) else None
        if check is not None:
            check(module)

    def __call__(self, batch: SyntheticBatch, generation: int, module: Any) -> Tensor:
        """One float64 value per point of ``batch``.

        Raises:
            ValueError: not one finite value per point, naming the argument.
            RuntimeError: a registered score needs the module and the loop has not attached one.
        """
        if self._command is not None:
            out: Any = self._command.scores(batch, generation)
        elif self._registered is not None:
            out = self._registered(batch.data, batch.conditions, module, **self._settings)
        else:
            assert self._callable is not None
            out = self._callable(batch.data, batch.conditions)
        raw = torch.as_tensor(out).detach().cpu()
        # (m,) or (m, 1): one value per point; anything else (an (m/2, 2) matrix has m values too)
        # is refused, never flattened into a wrong pairing of values and points
        if raw.shape not in ((len(batch),), (len(batch), 1)):
            raise ValueError(
                f"`{self.argument}` {self.description!r} must give one value per point, shape ({len(batch)},) or"
                f" ({len(batch)}, 1), got shape {tuple(raw.shape)}."
            )
        values = raw.to(torch.float64).flatten()
        if not bool(torch.isfinite(values).all()):
            bad = int((~torch.isfinite(values)).sum())
            raise ValueError(f"`{self.argument}` {self.description!r} gave {bad} non-finite values.")
        return values
