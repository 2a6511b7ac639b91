r"""Every setting of :class:`~sclc_lightning.SelfConsumingLoop`, declared once.

Each :class:`Setting` holds its name, default, role, check and documentation. From this one
table come:

- the validation of :meth:`LoopConfig.from_arguments <sclc_lightning.loop.config.LoopConfig.from_arguments>`
  (each setting's check, then the checks that join several settings);
- the ``Args:`` section of ``SelfConsumingLoop``'s docstring (what ``help()`` and ``sclc fit --help``
  show);
- the table of arguments in ``docs/loop.md`` (:func:`markdown_table`; ``python
  scripts/settings_table.py`` writes it);
- and the tests that hold the signature (names, order, defaults) and the fingerprint to it.

Roles:

- ``"deciding"``: decides the synthetic data; recorded in the checkpoint's fingerprint
  (:func:`~sclc_lightning.loop.fingerprint.build`) and compared on resume.
- ``"extent"``: how long and on how much the run trains; recorded in the manifest, and a resume
  may change it (a run is extended by raising ``generations``).
- ``"operational"``: where and how the work is done; never compared.

The user-facing signature stays flat, as Lightning's ``Trainer``'s is: a type checker and an
editor read it. A test fails when it and this table disagree.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sclc_lightning._checks import check_number, is_integer, is_number, plain
from sclc_lightning.sampler import SAMPLER_KEYWORDS

__all__ = ["LOOP_SETTINGS", "REQUIRED", "Setting", "check_settings", "docstring_arguments", "markdown_table"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a setting the user must give.
REQUIRED: Any = _Required()

Role = Literal["deciding", "extent", "operational"]


@dataclass(frozen=True)
class Setting:
    """One setting of the loop.

    Attributes:
        name: the argument's name.
        default: its default (:data:`REQUIRED`: none).
        role: ``"deciding"``, ``"extent"`` or ``"operational"`` (module docstring).
        check: ``check(value) -> value``: the value checked (and made plain), or a ``ValueError``
            naming the setting; the checks that join several settings are in
            :meth:`~sclc_lightning.loop.config.LoopConfig.from_arguments`.
        doc: what it means, for the docstring and the docs table (backticks, no markup beyond).
    """

    name: str
    default: Any
    role: Role
    check: Callable[[Any], Any]
    doc: str


# -------------------------------------------------------------------------- the checks ----
def _any(value: Any) -> Any:
    return value


def _count(name: str, minimum: int, optional: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if optional and value is None:
            return None
        if not is_integer(value) or value < minimum:
            prefix = "None or " if optional else ""
            raise ValueError(f"`{name}` must be {prefix}an integer >= {minimum}, got {value!r}.")
        return int(value)

    return check


def _passes(value: Any) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not 0 < float(value) < math.inf:
        raise ValueError(
            f"`passes_per_generation` must be None or a finite number > 0, got {value!r}"
            + (" (text: write the number without quotes)." if isinstance(value, str) else ".")
        )
    return float(value)


def _seed(value: Any) -> int | None:
    if value is not None and (not is_integer(value) or value < 0):
        raise ValueError(f"`seed` must be None (the run's seed) or an integer >= 0, got {value!r}.")
    return None if value is None else int(value)


def _mapping(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(
                f"`{name}` must be a mapping of names to values (a dict; in YAML a block of `key: value`"
                f" lines), got {value!r}."
            )
        return value

    return check


def _flag(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be True or False, got {value!r}.")
        return value

    return check


def _field_key(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not (value is None or is_integer(value) or isinstance(value, str)):
            raise ValueError(
                f"`{name}` must be None, a position (an integer) or a key (text) of the items, got {value!r}."
            )
        return int(value) if is_integer(value) else value

    return check


def _output_dir(value: Any) -> Any:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"`output_dir` must be a path (text) or None, got {value!r}.")
    if value is not None and not str(value).strip():
        raise ValueError("`output_dir` is empty (an unset variable?): give a folder, or None for <log_dir>/synthetic.")
    return value


def _start_from(value: Any) -> str:
    if value not in ("previous", "initial"):
        near = difflib.get_close_matches(value.lower(), ["previous", "initial"], n=1) if isinstance(value, str) else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"`start_from` must be 'previous' or 'initial', got {value!r}{hint}.")
    return str(value)


def _sampler(value: Any) -> Any:
    if not (isinstance(value, str) and value) and not callable(value):
        raise ValueError(f"`sampler` must be a method name, an import path or a callable, got {value!r}.")
    return value


def _mode(value: Any) -> Any:
    if isinstance(value, str):
        from sclc_lightning.mixing.policies import get_mixing_policy_class

        get_mixing_policy_class(value)  # an unknown name is refused first, listing the known ones
    return value


def _max_oversampling(value: Any) -> float:
    if not is_number(value) or not 1 <= value < math.inf:
        raise ValueError(f"`max_oversampling` must be a finite number >= 1, got {value!r}.")
    return float(value)


#: What the loop passes to the sampler itself (the Sampler protocol's arguments): not sampling settings.
LOOP_SAMPLER_ARGUMENTS = ("num_samples", *SAMPLER_KEYWORDS)


def _sample_kwargs(value: Any) -> dict[str, Any]:
    """``sample_kwargs`` as a plain dict of JSON-safe settings (they are recorded)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in value):
        raise ValueError(
            f"`sample_kwargs` must be a mapping of keyword names to values, e.g. {{'temperature': 0.9}}, got {value!r}."
        )
    taken = sorted(set(value) & set(LOOP_SAMPLER_ARGUMENTS))
    if taken:
        raise ValueError(f"`sample_kwargs` may not set {taken}: the loop passes them to the sampler itself.")
    checked = {}
    for key, setting in value.items():
        if isinstance(setting, float) and not math.isfinite(setting):
            raise ValueError(f"`sample_kwargs[{key!r}]` must be a finite number, got {setting!r}.")
        if not _json_safe(setting):
            raise ValueError(
                f"`sample_kwargs[{key!r}]` must be a number, string, boolean, None or a list/dict of them (it is"
                f" recorded with the run), got {type(setting).__name__} {setting!r}."
            )
        checked[key] = setting
    return checked


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_json_safe(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def _synthetic_fraction(value: Any) -> Any:
    """A number is checked here; a schedule once ``generations`` is known (in the config)."""
    if is_number(value):
        return check_number("synthetic_fraction", value, minimum=0)
    if getattr(value, "ndim", None) == 0 or type(value).__name__ == "Decimal":  # a 0-d tensor or array
        raise ValueError(
            f"`synthetic_fraction` must be a Python number >= 0 or a schedule, got {value!r}: give"
            f" float({type(value).__name__.lower()}) instead."
        )
    if value is None or isinstance(value, bool) or (isinstance(value, str) and ":" not in value):
        raise ValueError(
            "`synthetic_fraction` must be a finite number >= 0 or a schedule (a list per generation, a"
            f" function of the generation, {{'name': 'linear', ...}}), got {value!r}."
        )
    return value


# -------------------------------------------------------------------------- the table -----
LOOP_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "synthetic_fraction",
        REQUIRED,
        "deciding",
        _synthetic_fraction,
        "λ ≥ 0 (may exceed 1): each generation samples ⌊λn⌋ points, `n` the size of the real training set (the"
        " real subset's size in `fresh` mode). Or a schedule λₜ: a list of one value per generation, a function"
        ' of the generation (`"package.module:function"`) or `{"name": "linear", "start": 0.1, "end": 1.0}`'
        " (`sclc_lightning.mixing.schedule`).",
    ),
    Setting(
        "generations",
        REQUIRED,
        "extent",
        _count("generations", 0),
        "T ≥ 0: the generations trained after generation 0.",
    ),
    Setting(
        "images_per_generation",
        None,
        "extent",
        _count("images_per_generation", 1, optional=True),
        "training samples per generation, summed over ranks, drawn from the mixed set (rounded to whole batches"
        " on every rank, with a warning); `None`: one pass over the current mixed set.",
    ),
    Setting(
        "passes_per_generation",
        None,
        "extent",
        _passes,
        "train each generation on this many passes over its mixed set instead (the budget grows with an"
        " accumulating set: Gerstgrasser et al.'s accumulate sees all its data as often in every generation;"
        " a fixed `images_per_generation` is Kazdan et al.'s accumulate-subsample); excludes"
        " `images_per_generation`; `initial_images`, when given, still sets generation 0's budget.",
    ),
    Setting(
        "initial_images",
        None,
        "extent",
        _count("initial_images", 0, optional=True),
        "the budget of generation 0 (default: `images_per_generation`); `0` skips training generation 0 because"
        " the model is already trained (load its weights first: `sclc fit --init_weights`, or"
        " `sclc_lightning.weights.load_initial_weights`).",
    ),
    Setting(
        "mode",
        "augment",
        "deciding",
        _mode,
        'the mixing policy, a `MixingPolicy` or a registered name: `"augment"` (real and the latest synthetic'
        ' set), `"accumulate"` (real and every synthetic set so far), `"replace"` (the latest synthetic set only),'
        ' `"fresh"` (a new random real subset and the latest synthetic set) or your own'
        " (`register_mixing_policy`).",
    ),
    Setting(
        "mode_kwargs",
        None,
        "deciding",
        _mapping("mode_kwargs"),
        'arguments of the registered policy, e.g. `{"max_synthetic": 5000}` for `accumulate` or'
        ' `{"real_per_generation": 1000}` for `fresh`.',
    ),
    Setting(
        "corrector",
        None,
        "deciding",
        _any,
        'a `Corrector`, a registered name (`"kmeans"`, ...) or `None` (then the LightningModule\'s `correct`'
        " method if any, else none).",
    ),
    Setting(
        "corrector_kwargs",
        None,
        "deciding",
        _mapping("corrector_kwargs"),
        'arguments of the registered corrector, e.g. `{"strength": 1.0}`.',
    ),
    Setting(
        "output_dir",
        None,
        "operational",
        _output_dir,
        "where the synthetic data and its manifest go (default: `<trainer.log_dir or default_root_dir>/synthetic`);"
        " a shared filesystem for DDP over several nodes. A URL is refused: a run on object storage is"
        " `sclc fit --run_dir s3://…` (docs/scale.md).",
    ),
    Setting(
        "seed",
        None,
        "deciding",
        _seed,
        "every draw of generation t on rank r is seeded from (seed, t, r) and the global generators are reseeded"
        " per generation: a resume continues exactly. `None` (default) takes the run's seed: the one given to"
        " `seed_everything` (or LightningCLI's `seed_everything`), else a fresh one drawn when the fit starts;"
        " either way it is logged and recorded in the checkpoint and the manifest, and a resume takes the"
        " checkpoint's. An integer fixes it whatever the run's seed.",
    ),
    Setting(
        "sample_batch_size",
        1024,
        "operational",
        _count("sample_batch_size", 1),
        "points per sampler call (not compared on resume: a sampler whose draws depend on its batch size gives"
        " other points with another).",
    ),
    Setting(
        "data_field",
        None,
        "deciding",
        _field_key("data_field"),
        "the generated field of tuple/dict items (default: position 0 / the first tensor); recorded with the"
        " item structure.",
    ),
    Setting(
        "condition_field",
        None,
        "deciding",
        _field_key("condition_field"),
        "the field passed as `sample(..., conditions=...)`, or `None`; recorded with the item structure.",
    ),
    Setting(
        "shard_rows",
        65536,
        "operational",
        _count("shard_rows", 1),
        "rows per safetensors shard on disk.",
    ),
    Setting(
        "start_from",
        "previous",
        "deciding",
        _start_from,
        'where generations after the first start: `"previous"` (the previous generation\'s weights, optimizer'
        ' and scheduler states: iterative fine-tuning) or `"initial"` (the states the run started from: a new'
        " model per generation, as Gerstgrasser et al.; the pretrained model fine-tuned anew, as Shumailov et"
        " al.). The initial weights are written to `<output_dir>/initial_state.safetensors` and checked"
        " against the SHA-256 in the checkpoint on resume (`sclc_lightning.loop.restart`).",
    ),
    Setting(
        "fields",
        None,
        "deciding",
        _mapping("fields"),
        'how the other fields of a synthetic item are built, by field: `"copy"` from a real item (the default),'
        ' `"data"` (equal to the data: `labels` of `input_ids`), `"shift"` (next-token targets), `"generated"`'
        " (returned by the sampler with the data) or a callable `f(data) -> Tensor`"
        " (`sclc_lightning.items.contract`).",
    ),
    Setting(
        "sampler",
        "sample",
        "deciding",
        _sampler,
        'the module\'s method that samples (`"sample"`), `"package.module:function"` or a callable'
        " `f(module, num_samples, **kwargs)` (`sclc_lightning.sampler`).",
    ),
    Setting(
        "dry_run",
        True,
        "operational",
        _flag("dry_run"),
        "run a tiny draw through sampling, correction, item building and collation before generation 0"
        " (`sclc_lightning.loop.preflight`).",
    ),
    Setting(
        "accept_other_real_data",
        False,
        "operational",
        _flag("accept_other_real_data"),
        "resume a run whose real data differs from its checkpoint's (size or content: refused by default, naming"
        " what changed: `real_data.items`, `real_data.sha256`); the change is logged.",
    ),
    Setting(
        "accept_edited_code",
        False,
        "operational",
        _flag("accept_edited_code"),
        "resume a run although a callable it records (schedule, sampler, field rule, reward, score, verifier, a"
        " function given to a corrector or policy) was edited since the checkpoint: same name, other code, or a"
        " schedule that now gives other λ (refused by default, naming the setting); the change is logged.",
    ),
    Setting(
        "sample_kwargs",
        None,
        "deciding",
        _sample_kwargs,
        'settings passed to every sampler call, e.g. `{"temperature": 0.9}`: the sampling bias of Alemohammad'
        " et al. (2024). Recorded with each generation and in the checkpoint; the sampler's signature must"
        " accept them (checked at set-up).",
    ),
    Setting(
        "max_oversampling",
        100.0,
        "operational",
        _max_oversampling,
        "the most points the loop draws per point kept when the corrector selects (`curate`, `verify`): past"
        " it, the run stops with `OversamplingError`.",
    ),
    Setting(
        "model_corrector",
        None,
        "deciding",
        _any,
        "a weight-space corrector applied at each generation's end, before the next samples"
        ' (`sclc_lightning.correctors.model`): a `ModelCorrector` or a registered name (`"neon"`).',
    ),
    Setting(
        "model_corrector_kwargs",
        None,
        "deciding",
        _mapping("model_corrector_kwargs"),
        'its arguments, e.g. `{"weight": 1.5, "num_samples": 1000}`.',
    ),
)

_BY_NAME = {setting.name: setting for setting in LOOP_SETTINGS}


def check_settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value, checked: those given in ``arguments``, the others' defaults.
    NumPy scalars become Python numbers, inside mappings and lists too (they are recorded, and a
    checkpoint holding one would not load with ``weights_only=True``).

    Raises:
        TypeError: an argument that is not a setting, or a required one missing.
        ValueError: a setting's check failed (the message names it and the value).
    """
    unknown = sorted(set(arguments) - set(_BY_NAME))
    if unknown:
        raise TypeError(f"SelfConsumingLoop got unexpected arguments {unknown}.")
    missing = [s.name for s in LOOP_SETTINGS if s.default is REQUIRED and s.name not in arguments]
    if missing:
        raise TypeError(f"SelfConsumingLoop is missing the required arguments {missing}.")
    return {s.name: s.check(plain(arguments.get(s.name, s.default))) for s in LOOP_SETTINGS}


def _shown_default(setting: Setting) -> str:
    if setting.default is REQUIRED:
        return "required"
    return f"`{setting.default!r}`"


def markdown_table() -> str:
    """The table of arguments of ``docs/loop.md``."""
    rows = ["| argument | default | role | meaning |", "|---|---|---|---|"]
    for s in LOOP_SETTINGS:
        rows.append(f"| `{s.name}` | {_shown_default(s)} | {s.role} | {s.doc} |")
    return "\n".join(rows) + "\n"


def docstring_arguments(indent: str = "    ") -> str:
    """The ``Args:`` section of ``SelfConsumingLoop``'s docstring (Google style)."""
    import textwrap

    lines = [f"{indent}Args:"]
    for s in LOOP_SETTINGS:
        text = f"{s.name}: {s.doc} ({s.role}{'' if s.default is REQUIRED else f', default {s.default!r}'})"
        wrapped = textwrap.wrap(text, 100, initial_indent=indent * 2, subsequent_indent=indent * 3)
        lines.extend(wrapped)
    return "\n".join(lines)


TABLE_START = "<!-- settings table: python scripts/settings_table.py -->\n"
TABLE_END = "<!-- end of the settings table -->\n"


def write_table(page: str) -> bool:
    """Write :func:`markdown_table` between the markers of ``page``; whether it changed."""
    with open(page, encoding="utf-8") as file:
        text = file.read()
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    new = head + TABLE_START + markdown_table() + TABLE_END + tail
    if new != text:
        with open(page, "w", encoding="utf-8") as file:
            file.write(new)
    return new != text
