"""Methods: a name and the loop settings that make it (a corrector and its arguments, a mixing
policy and its arguments, a model corrector, sampling settings, λ), given as a YAML file, inline
JSON or a Python mapping; settings that differ per task (a reward, a verifier) go under
``per_task``, and the task traits it needs (``continuous``, ``log_prob``, ...) under ``needs``
(``"unconditional|labels"``: either): on a task without them it is skipped, with the reason in
the card.

Only the settings that define a method are taken: the ones that decide the synthetic data
(``deciding`` in :data:`~sclc_lightning.loop.settings.LOOP_SETTINGS`), but for the seed and the
item structure, which belong to the run and the task. Each is checked now, as the loop will check
it, so that a typo stops the bench before anything trains.

Examples:
    >>> method = parse_method("ot1", '{"corrector": "optimal_transport", "corrector_kwargs": {"strength": 1.0}}')
    >>> method.name, method.settings_for("gaussian")["corrector"]
    ('ot1', 'optimal_transport')
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sclc_lightning.loop.settings import LOOP_SETTINGS

__all__ = ["METHOD_SETTINGS", "TRAITS", "Method", "parse_method"]

#: The loop settings a method may set.
METHOD_SETTINGS = tuple(
    s.name
    for s in LOOP_SETTINGS
    if s.role == "deciding" and s.name not in ("seed", "data_field", "condition_field", "fields")
)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
#: The traits a built-in task offers (a method ``needs`` some of them).
TRAITS = ("continuous", "tokens", "unconditional", "conditional", "labels", "log_prob")


@dataclass(frozen=True)
class Method:
    """A method of the bench.

    Attributes:
        name: how the card and the figures name it.
        settings: its loop settings, for every task.
        per_task: settings for one task, by task name, taking precedence over :attr:`settings`.
        needs: the task traits it needs (``"a|b"``: either).
        part: the name of the task-specific settings it takes from a task's ``parts``.
        builtin: one of the built-in methods (a task may name it unfit for its size).
    """

    name: str
    settings: dict[str, Any]
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    part: str | None = None
    builtin: bool = False

    def settings_for(self, task: str) -> dict[str, Any]:
        """The loop settings of this method on ``task``."""
        return {**self.settings, **self.per_task.get(task, {})}

    def skipped_on(self, task: Any) -> str | None:
        """Why this method does not apply to ``task`` (a :class:`~sclc_lightning.bench.tasks.Task`),
        or ``None`` when it does: a trait it needs that the task lacks, or a task-specific part
        (:attr:`part`) the task does not give and no ``per_task`` entry gives either, or a
        built-in method the task names unfit for its size."""
        unfit = getattr(task, "unfit", {}).get(self.name) if self.builtin else None
        if unfit is not None:
            return str(unfit)
        missing = [need for need in self.needs if not set(need.split("|")) & set(task.traits)]
        if missing:
            return f"needs {', '.join(missing)}; the task offers {', '.join(sorted(task.traits)) or 'nothing'}"
        if self.part is not None and self.part not in task.parts and task.name not in self.per_task:
            return f"needs the task's settings for {self.part!r}, which it does not give"
        return None

    def for_task(self, task: Any) -> Method:
        """This method with the task's part (:attr:`part`) among its settings for ``task``."""
        if self.part is None or self.part not in task.parts:
            return self
        merged = {**dict(task.parts[self.part]), **self.per_task.get(task.name, {})}
        return Method(
            self.name, self.settings, {**self.per_task, task.name: merged}, self.needs, self.part, self.builtin
        )


def parse_method(name: str, spec: str | Mapping[str, Any]) -> Method:
    """The method ``name`` from ``spec``: a mapping, inline JSON or the path of a YAML file.

    Raises:
        ValueError: naming the method and what is wrong (a name that is not one, text that is
            neither a file nor JSON, a setting that is not a method's, with the nearest, a value
            the loop refuses).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"A method's name is 1 to 64 ASCII letters, digits, '_', '-' or '.' (not first), got {name!r}."
        )
    given = _read(name, spec)
    needs = given.pop("needs", [])
    if isinstance(needs, str) or not isinstance(needs, (list, tuple)) or not all(isinstance(n, str) for n in needs):
        raise ValueError(
            f"Method {name!r}: `needs` must be a list of task traits (e.g. ['continuous']), got {needs!r}."
        )
    for need in (alternative for given in needs for alternative in given.split("|")):
        if need not in TRAITS:
            near = difflib.get_close_matches(need, TRAITS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"Method {name!r}: `needs` names {need!r}{hint}; the traits are {list(TRAITS)}.")
    per_task = given.pop("per_task", {})
    if not isinstance(per_task, Mapping) or not all(isinstance(v, Mapping) for v in per_task.values()):
        raise ValueError(f"Method {name!r}: `per_task` must map task names to settings, got {per_task!r}.")
    # settings given per task (a reward) may complete the common ones: each task's are checked whole
    settings = _checked(name, given, whole=not per_task)
    tasks = {str(task): _checked(f"{name}` on `{task}", dict(values), settings) for task, values in per_task.items()}
    return Method(name, settings, tasks, tuple(needs))


def _read(name: str, spec: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        return dict(spec)
    if not isinstance(spec, str):
        raise ValueError(f"Method {name!r}: give its settings as a mapping, inline JSON or a YAML file, got {spec!r}.")
    text = spec.strip()
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as err:
            raise ValueError(f"Method {name!r}: its inline JSON does not parse ({err}).") from None
    elif Path(text).is_file():
        import yaml

        try:
            loaded = yaml.safe_load(Path(text).read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"Method {name!r}: {text} is not valid YAML ({first}).") from None
    else:
        raise ValueError(f"Method {name!r}: {spec!r} is neither inline JSON (`{{...}}`) nor a YAML file.")
    if not isinstance(loaded, Mapping):
        raise ValueError(f"Method {name!r}: its settings must be a mapping of loop settings, got {loaded!r}.")
    return dict(loaded)


def _checked(
    name: str, settings: dict[str, Any], base: Mapping[str, Any] | None = None, whole: bool = True
) -> dict[str, Any]:
    """``settings`` if every key is a method's setting and (``whole``) the loop accepts the values
    with ``base`` beneath them."""
    from sclc_lightning.loop.config import LoopConfig

    for key in settings:
        if key not in METHOD_SETTINGS:
            near = difflib.get_close_matches(str(key), METHOD_SETTINGS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(
                f"Method `{name}`: {key!r} is not a setting a method sets{hint}; it sets {list(METHOD_SETTINGS)}."
            )
    if not whole:
        return settings
    try:
        LoopConfig.from_arguments({"synthetic_fraction": 1.0, "generations": 1, **(base or {}), **settings})
    except (ValueError, TypeError) as err:
        raise ValueError(f"Method `{name}`: {err}") from None
    return settings
