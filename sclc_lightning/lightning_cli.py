"""``sclc fit``, ``sclc validate`` and ``sclc test``: LightningCLI with the loop under ``loop:``.

Model, data, trainer and the :class:`~sclc_lightning.SelfConsumingLoop` are
``class_path``/``init_args`` YAML, and any value can be overridden on the command line. Every
run gets its own directory (``--run_dir``, default ``runs/<recipe>/<timestamp>``) holding the
resolved ``config.yaml``, Lightning checkpoints and logs, the synthetic data and its manifest,
and ``metrics.csv`` with one row per generation. ``--init_weights PATH`` (with
``--loop.initial_images 0``) starts from a trained generation 0, see :mod:`sclc_lightning.weights`.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import math
import os
import pickle
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from sclc_lightning._extras import MissingExtraError
from sclc_lightning._files import check_local_folder
from sclc_lightning.callbacks.generation_csv import GenerationCSV
from sclc_lightning.callbacks.remote import RemoteSync
from sclc_lightning.correctors.command import CorrectorProcessError
from sclc_lightning.loop import SelfConsumingLoop, SyntheticDataError
from sclc_lightning.store.lock import RunDirectoryLocked
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.remote import RemoteRunDirectory, is_url
from sclc_lightning.weights import load_initial_weights

__all__ = [
    "SCLCCLI",
    "CLIError",
    "check_resumed_folder",
    "check_shared_shapes",
    "cli_class",
    "follow_run_dir",
    "model_namespace",
    "moved_class_path",
    "numbers_from_text",
    "run_lightning_cli",
]

SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: The launchers' global rank variables: set and not 0 in every process of a multi-process run but
#: the first (Lightning's own launcher sets WORLD_SIZE in the processes it starts).
_RANKS = ("RANK", "SLURM_PROCID")
#: Run directories on object storage opened by this process's commands (closed when each ends).
OPENED: list[RemoteRunDirectory] = []


class CLIError(Exception):
    """A configuration the command refuses before training: the message says which argument,
    which value and what is allowed, in a line or two (``--debug`` shows the traceback)."""


#: Errors that, before training starts, come from what the user configured (an ``OSError``
#: names its file: a ``run_dir`` that is a file, a read-only folder, a special file).
_SETUP_ERRORS: tuple[type[BaseException], ...] = (
    argparse.ArgumentError,
    ValueError,
    TypeError,
    OSError,
    pickle.UnpicklingError,
    RunDirectoryError,
    RunDirectoryLocked,
    MissingExtraError,
    MisconfigurationException,  # Lightning's refusal of a trainer setting (`max_time: abc`)
)
#: Errors that, once training started, still say all there is to say in their message: the run
#: directory's checks, the model's or corrector's output refused, an external corrector's failure.
_RUN_ERRORS: tuple[type[BaseException], ...] = (
    RunDirectoryError,
    RunDirectoryLocked,
    SyntheticDataError,
    CorrectorProcessError,
)


def _message(error: BaseException) -> str:
    """What the command prints for ``error``: its message on one line, and for a checkpoint
    torch's weights-only loader refused, what that means."""
    if isinstance(error, pickle.UnpicklingError):
        return (
            "the checkpoint cannot be loaded safely: torch's weights-only loader refused it (it holds"
            " objects other than tensors and plain data, which loading would run as code). Load only"
            " checkpoints the loop wrote; --debug shows torch's message."
        )
    return _short(error) + _moved_hint(str(error))


#: Class paths that moved before the first release (README, "Changes"), as (old prefix, new
#: prefix); the old ones are removed, not forwarded.
_MOVED = (
    ("sclc_lightning.metrics.", "sclc_lightning.callbacks."),
    ("sclc_lightning.visuals.", "sclc_lightning.callbacks."),
    ("sclc_lightning.generation_csv.", "sclc_lightning.callbacks."),
    ("sclc_lightning.data.", "sclc_lightning.datasets."),
)


def _importable(path: str) -> bool:
    """Whether the dotted ``path`` names something: an attribute of an importable module."""
    module, _, name = path.rpartition(".")
    try:
        return bool(module) and hasattr(importlib.import_module(module), name)
    except Exception:  # not importable, or failing in its import: not something to point to
        return False


def moved_class_path(path: str) -> str | None:
    """The class path that ``path`` moved to before the first release (README, "Changes");
    ``None`` when ``path`` exists, or is not one of the moved ones.

    Examples:
        >>> moved_class_path("sclc_lightning.visuals.SampleFigures")
        'sclc_lightning.callbacks.SampleFigures'
        >>> moved_class_path("sclc_lightning.callbacks.SampleFigures") is None
        True
    """
    if not path.startswith("sclc_lightning.") or _importable(path):
        return None
    for old, new in _MOVED:
        moved = new + path[len(old) :]
        if path.startswith(old) and _importable(moved):
            return moved
    return None


def _moved_hint(text: str) -> str:
    """``; `old` moved: write `class_path: new` (README, Changes).`` for the moved class paths
    that ``text`` names (jsonargparse names the class path it could not import); ``""`` if none."""
    named = dict.fromkeys(re.findall(r"sclc_lightning(?:\.\w+)+", text))
    hints = [f"`{old}` moved: write `class_path: {new}`" for old in named if (new := moved_class_path(old))]
    return f"; {'; '.join(hints)} (README, Changes)." if hints else ""


def _option_strings(parser: Any) -> set[str]:
    """Every option of ``parser`` and of its subcommands' parsers (``--loop.generations``)."""
    options: set[str] = set()
    for action in getattr(parser, "_actions", []):
        options.update(action.option_strings)
        subparsers = action.choices.values() if isinstance(action.choices, dict) else ()
        for subparser in subparsers:
            options |= _option_strings(subparser)
    return options


def _did_you_mean(message: str, options: Iterable[str]) -> str:
    """For argparse's ``unrecognized arguments: ...``, ``did you mean --x?`` for each unknown
    option close to a known one, and for a config file's unknown key, ``did you mean 'x'?``
    (``""`` if none is).

    Examples:
        >>> _did_you_mean("unrecognized arguments: --loop.generatons 3", ["--loop.generations"])
        'did you mean --loop.generations?'
        >>> _did_you_mean("Subcommand 'fit' does not accept option 'loop.generation'", ["--loop.generations"])
        "did you mean 'loop.generations'?"
    """
    known = [option for option in options if option.startswith("--") and not option.endswith(".help")]
    hints: list[str] = []
    for key in re.findall(r"does not accept options? '([\w.]+)'", message):  # a key of a config file
        close = difflib.get_close_matches(f"--{key}", known, n=1, cutoff=0.8)
        hints += [f"did you mean {close[0][2:]!r}?"] if close else []
    if not message.startswith("unrecognized arguments:"):
        return " ".join(hints)
    for word in message.split(":", 1)[1].split():
        close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.8)
        if word.startswith("--") and close:
            hints.append(f"did you mean {close[0]}?")
    return " ".join(hints)


#: Arguments that describe the same shape in the model and in the data: ``(model's, data's)``.
SHARED_SHAPES = (("dim", "dim"), ("frames", "frames"), ("image_size", "resolution"), ("num_classes", "num_classes"))


def check_shared_shapes(model: Any, data: Any) -> None:
    """Refuse a model and data whose shape arguments disagree (``dim`` in both blocks of a
    recipe, one of them changed), naming both values, before a shape error deep in training.

    Examples:
        >>> check_shared_shapes({"dim": 2}, {"dim": 2, "n": 10})
        >>> try:
        ...     check_shared_shapes({"dim": 2}, {"dim": 1})
        ... except ValueError as err:
        ...     print(str(err).split(":")[0])
        model.init_args.dim=2 but data.init_args.dim=1
    """
    model = model or {}
    data = data or {}
    for model_key, data_key in SHARED_SHAPES:
        mine, theirs = model.get(model_key), data.get(data_key)
        if mine is not None and theirs is not None and mine != theirs:
            raise ValueError(
                f"model.init_args.{model_key}={mine!r} but data.init_args.{data_key}={theirs!r}: they describe"
                f" the same points; set both (e.g. --model.init_args.{model_key} {theirs}"
                f" --data.init_args.{data_key} {theirs})."
            )


#: The links W&B (re)points in its ``save_dir``'s ``wandb/`` folder when a run starts.
_WANDB_LINKS = ("latest-run", "debug.log", "debug-internal.log")


class _TrainingStarted(Callback):
    """Marks the moment the fit starts training: errors before it are configuration errors. It
    also keeps what the attempt adds to the run folder (its loggers, the folders it makes, the
    W&B links it repoints), so that an attempt that ends before training leaves the folder as it
    found it (:meth:`discard_logs`): only what the attempt made is removed, never what another
    fit writes beside it."""

    def __init__(self) -> None:
        self.started = False
        self.loggers: list[Any] = []
        self.new_folders: list[Path] = []
        self.wandb_links: dict[Path, str | None] = {}
        self.wandb_runs: list[Path] = []

    def note_run_dir(self, run_dir: str) -> None:
        """The run's folder, before anything is written there: which of its folders (and missing
        parents) this attempt will make, and where W&B's links point now."""
        given = Path.cwd() / os.path.expanduser(run_dir)  # ".." kept: `a/../b` makes `a` too
        run = Path(os.path.realpath(given))
        steps = [Path(*given.parts[:i]) for i in range(1, len(given.parts) + 1) if given.parts[i - 1] != ".."]
        made = [Path(os.path.realpath(step)) for step in steps if not os.path.lexists(step)]
        inside = [folder for folder in (run / "logs", run / "wandb") if not os.path.lexists(folder)]
        self.new_folders = [*inside, *reversed(made)]  # the innermost first
        links = [run / "wandb" / name for name in _WANDB_LINKS]
        self.wandb_links = {link: os.readlink(link) if link.is_symlink() else None for link in links}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = True

    def note_wandb_run(self) -> None:
        """This process's open W&B run (before it is finished): the attempt's own, even when its
        logger had not yet received it (Ctrl-C while W&B was starting)."""
        wandb = sys.modules.get("wandb")
        folder = getattr(getattr(wandb, "run", None), "dir", None)
        if folder:
            self.wandb_runs.append(Path(folder).parent)

    def discard_logs(self) -> None:
        """Remove what this attempt made: its W&B run's folder, its CSV logger's version folder
        (empty, or holding only the ``hparams.yaml`` logged before training), W&B's links that point
        at its run as they were, then the folders it made, each only while empty."""
        import shutil

        for logger in self.loggers:
            run_dir = getattr(getattr(logger, "_experiment", None), "dir", None)  # a W&B run it started
            if "wandb" in type(logger).__name__.lower():
                if run_dir:
                    self.wandb_runs.append(Path(run_dir).parent)
            elif getattr(logger, "log_dir", None):
                _remove_version(Path(logger.log_dir))
        ours = {folder.name for folder in self.wandb_runs if folder.name.startswith(("offline-run-", "run-"))}
        for folder in self.wandb_runs:
            if folder.name in ours:
                shutil.rmtree(folder, ignore_errors=True)
        for link, target in self.wandb_links.items():
            _restore_link(link, target, ours)
        for folder in self.new_folders:
            _remove_if_empty(folder)


def _remove_version(folder: Path) -> None:
    """A logger's version folder of this attempt: removed when it holds only what a logger writes
    before training (Lightning's ``hparams.yaml``, TensorBoard's first events file)."""
    try:
        if not folder.is_dir() or folder.is_symlink():
            return
        files = list(folder.iterdir())
        if all(f.is_file() and (f.name == "hparams.yaml" or f.name.startswith("events.out.tfevents.")) for f in files):
            for file in files:
                file.unlink()
            folder.rmdir()
    except OSError:
        pass


def _settle_run_dir(config: Namespace) -> None:
    """``run_dir`` as one folder for every file of the run: ``~`` expanded, and a path through
    ``..`` resolved as the filesystem does (Lightning tidies its root folder as text, which differs
    after a link)."""
    run_dir = config.get("run_dir")
    if not run_dir or is_url(str(run_dir)):
        return
    run_dir = os.path.expanduser(str(run_dir))
    config.run_dir = os.path.realpath(run_dir) if ".." in Path(run_dir).parts else run_dir


def _remove_if_empty(folder: Path) -> None:
    """``rmdir``: a folder with anything in it (or a link) stays."""
    try:
        if folder.is_dir() and not folder.is_symlink():
            folder.rmdir()
    except OSError:
        pass


def _restore_link(link: Path, target: str | None, ours: set[str]) -> None:
    """Point ``link`` at ``target`` again (remove it, for ``None``) when it points into one of the
    W&B runs ``ours`` now; a link another fit set is left alone."""
    try:
        now = os.readlink(link) if link.is_symlink() else None
        if now is None or now == target or not ours & set(Path(now).parts):
            return  # as it was, or not pointing at this attempt's run
        link.unlink()
        if target is not None:
            link.symlink_to(target)
    except OSError:
        pass


def _short(error: BaseException) -> str:
    r"""The message of ``error`` on one line: jsonargparse's union errors are cut down to the
    error of the type that was meant (with its detail: the option or value refused, through
    nested unions) and, when that says nothing more, the value given; an option a class does not
    take gets the one meant.

    Examples:
        >>> _short(ValueError('Parser key "n":\n  Expected an int. Got value: x'))
        'Parser key "n": Expected an int. Got value: x'
    """
    return _option_hint(_shorten(str(error).strip()))[:900]


_UNION = "Does not validate against any of the Union subtypes"


def _shorten(text: str) -> str:
    """:func:`_short` of a message's text (applied again to a union's cause)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if _UNION not in text:
        return " ".join(lines)
    cause = _union_cause(text)
    detail = _shorten("\n".join(cause)) if cause else ""
    given = [line for line in lines if line.startswith("Given value:")][-1:] if len(cause) < 2 else []
    head = lines[: next(i for i, line in enumerate(lines) if _UNION in line)]  # what the union is of
    return " ".join(part for part in [*head, detail, *given] if part) or " ".join(lines)


def _union_cause(text: str) -> list[str]:
    """The first error of a jsonargparse union message that is not ``None``'s: its lines, those
    indented under it included (``Option 'x' is not accepted``, a nested union's errors), with
    their indentation, the leading ``- `` blanked."""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = next((i for i, line in enumerate(lines) if line.strip() == "Errors:"), None)
    if errors is None:
        return []
    level = len(lines[errors]) - len(lines[errors].lstrip())
    causes: list[list[str]] = []
    item: int | None = None  # the indentation of the union's items
    for line in lines[errors + 1 :]:
        depth = len(line) - len(line.lstrip())
        if depth <= level:
            break  # past the union's errors ("Given value: ...")
        if line.lstrip().startswith("- ") and (item is None or depth == item):
            item = depth
            causes.append([line.replace("- ", "  ", 1)])
        elif causes:
            causes[-1].append(line)
    meant = [cause for cause in causes if "<class 'NoneType'>" not in cause[0]]
    expected = [cause[0].strip().split(". Got value")[0] for cause in meant if len(cause) == 1]
    if len(meant) > 1 and len(expected) == len(meant) and all(e.startswith("Expected a") for e in expected):
        return ["Expected " + " or ".join(e[len("Expected ") :] for e in expected)]  # bool or int
    return meant[0] if meant else []


def _option_hint(message: str) -> str:
    """``message`` with ``(did you mean 'lr'?)`` after each ``Option 'x' is not accepted`` of the
    class named last before it, when that class takes an argument close to ``x``; else the
    arguments it takes.

    Examples:
        >>> _option_hint("Problem with given class_path 'sclc_lightning.models.GaussianModel':"
        ...              " Option 'dimm' is not accepted")[-44:]
        "'dimm' is not accepted (did you mean 'dim'?)"
    """
    paths = [(found.start(), found.group(1)) for found in re.finditer(r"given class_path '([\w.]+)'", message)]

    def hint(match: re.Match[str]) -> str:
        named = [path for start, path in paths if start < match.start()]
        try:
            module, _, name = named[-1].rpartition(".")
            parameters = _init_parameters(getattr(importlib.import_module(module), name))
        except (IndexError, ImportError, AttributeError, ValueError, TypeError):
            return match.group(0)
        near = difflib.get_close_matches(match.group(1).split(".")[0], parameters, n=1)
        if near:
            return f"{match.group(0)} (did you mean {near[0]!r}?)"
        return f"{match.group(0)} ({name} takes {', '.join(parameters) or 'no arguments'})"

    return re.sub(r"Option '([\w.]+)' is not accepted", hint, message)


def _init_parameters(cls: type) -> list[str]:
    """The named arguments of ``cls``'s constructor, following ``**kwargs`` to its bases as
    jsonargparse does."""
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()  # type: ignore[misc]
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return [name for name in dict.fromkeys(names) if name != "self"]


class _SaveConfigToRunDir(SaveConfigCallback):
    """Writes the resolved configuration to ``<run_dir>/config.yaml``; for ``fit``, when training
    starts: an attempt refused in set-up (a resume with changed settings, a dry run refused)
    leaves the run's ``config.yaml`` as it was."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().setup(trainer, pl_module, "fit")

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / self.config_filename
            path.parent.mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
        # The run's configuration (lambda, gamma, mode, corrector, model, data) in every logger.
        config = json.loads(json.dumps(self.config.as_dict(), default=str))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class _SCLCCommand:
    """What ``sclc fit`` adds to LightningCLI: the loop under its own ``loop:`` key and a
    directory per run. Mixed into the LightningCLI of the namespace the model is written for
    (:data:`NAMESPACE`): ``lightning.pytorch`` (:class:`SCLCCLI`) or ``pytorch_lightning``."""

    #: The Lightning package whose classes the command uses (``lightning.pytorch`` or ``pytorch_lightning``).
    NAMESPACE: ClassVar[str] = "lightning.pytorch"
    _remote: RemoteRunDirectory | None = None
    _marker: _TrainingStarted | None = None

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, marker: Callback | None = None) -> None:
        # Parse errors are raised (and printed in a line by `sclc`), not printed with the usage.
        no_exit = {"exit_on_error": False}
        self._marker = marker if isinstance(marker, _TrainingStarted) else None
        lightning = importlib.import_module(self.NAMESPACE)
        super().__init__(  # type: ignore[call-arg]
            model_class=lightning.LightningModule,
            datamodule_class=lightning.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=_SaveConfigToRunDir,
            trainer_defaults={"max_epochs": -1, "callbacks": [GenerationCSV(), *([marker] if marker else [])]},
            parser_kwargs={**no_exit, **dict.fromkeys(SUBCOMMANDS, no_exit)},
            args=list(args) if args is not None else None,
            run=run,
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser: Any) -> None:
        # As add_lightning_class_args does for a callback, without its check of the namespace.
        parser.callback_keys.append("loop")
        parser.add_class_arguments(SelfConsumingLoop, "loop", fail_untyped=False, instantiate=True, sub_configs=True)
        parser.add_argument(
            "--wandb",
            type=bool,
            default=True,
            help="Also log to W&B through WandbLogger when the trainer has no logger configured: offline"
            " unless WANDB_MODE=online; WANDB_MODE=disabled turns it off.",
        )
        parser.add_argument(
            "--init_weights",
            type=str | None,
            default=None,
            help="Start from these weights (a converged or pretrained generation 0, usually with"
            " --loop.initial_images 0): a Lightning checkpoint, a safetensors file or a diffusers model"
            " folder. Not used when resuming with --ckpt_path.",
        )
        parser.add_argument(
            "--init_weights_module",
            type=str | None,
            default=None,
            help="Load --init_weights into this submodule of the model (e.g. 'unet' for a diffusers UNet).",
        )
        parser.add_argument(
            "--slurm",
            type=dict | None,
            default=None,
            help="Resources of each point's job for `sclc grid --launcher slurm` (partition, time, nodes,"
            " tasks_per_node, gpus_per_node, ...); `sclc fit` ignores them.",
        )
        parser.add_argument(
            "--run_dir",
            type=str | None,
            default=None,
            help="Directory of this run (default: runs/<config name>/<timestamp>). A run's config.yaml given"
            " with another --run_dir writes there: its output_dir and loggers follow unless set elsewhere.",
        )
        parser.add_argument(
            "--model_settings_on_resume",
            type=str,
            default="refuse",
            help="With --ckpt_path, Lightning restores the model's settings from the checkpoint. A model"
            " setting of the recipe or command line that differs from the checkpoint's is 'refuse'd by"
            " name (default); 'checkpoint' keeps the checkpoint's; 'config' trains on with the new value"
            " (recorded in config.yaml).",
        )

    def _parse_ckpt_path(self) -> None:
        """``--ckpt_path last``: the run's most advanced checkpoint of the loop; then Lightning's
        restoring of the model's settings from the checkpoint, which never silently replaces a
        different value the recipe or the command line gave (``--model_settings_on_resume``)."""
        sub = self.config.get("subcommand")  # type: ignore[attr-defined]
        config = self.config[sub] if sub else None  # type: ignore[attr-defined]
        if config is not None:
            _settle_run_dir(config)
            self._open_remote(config)
        if config is None or not config.get("ckpt_path"):
            super()._parse_ckpt_path()  # type: ignore[misc]
            return
        if config.ckpt_path == "last":
            config.ckpt_path = str(last_checkpoint(config.get("run_dir")))
        choice = config.get("model_settings_on_resume", "refuse")
        if choice not in ("refuse", "checkpoint", "config"):
            raise ValueError(f"--model_settings_on_resume must be refuse, checkpoint or config, got {choice!r}.")
        given = _init_args(config.get("model"))
        super()._parse_ckpt_path()  # type: ignore[misc]
        config = self.config[sub]  # type: ignore[attr-defined]
        restored = _init_args(config.get("model"))
        changed = {
            k: (restored[k], given[k]) for k in given if k in restored and _plain(given[k]) != _plain(restored[k])
        }
        if not changed or choice == "checkpoint":
            return
        listed = ", ".join(
            f"model.init_args.{k}: checkpoint {old!r} vs now {new!r}" for k, (old, new) in changed.items()
        )
        if choice == "refuse":
            raise ValueError(
                f"Resuming from {config.ckpt_path}, whose model settings differ from the recipe's or the command"
                f" line's ({listed}); Lightning would take the checkpoint's. Drop the change, or choose with"
                " --model_settings_on_resume checkpoint (keep the checkpoint's) or config (train on with the new"
                " values)."
            )
        for key, (_, new) in changed.items():
            config.model.init_args[key] = new
        rank_zero_warn(f"sclc: resuming with model settings that differ from the checkpoint's, as asked ({listed}).")

    def _open_remote(self, config: Namespace) -> None:
        """``--run_dir URL``: take the run's lease, pull its latest snapshot into the local
        folder the fit then works in (``run_dir`` becomes that folder), and publish it as the fit
        goes (:class:`~sclc_lightning.callbacks.remote.RemoteSync`)."""
        url = config.get("run_dir")
        if not is_url(url):
            return
        if self.NAMESPACE != "lightning.pytorch":
            raise CLIError(f"--run_dir {url}: a run on object storage needs a model of lightning.pytorch for now.")
        trainer = config.get("trainer") or Namespace()
        several = _processes(trainer.get("devices"), trainer.get("num_nodes")) > 1
        if several or int(os.environ.get("WORLD_SIZE") or 1) > 1 or any(os.environ.get(k, "0") != "0" for k in _RANKS):
            raise CLIError(
                f"--run_dir {url}: a run on object storage takes one process for now (this run has several);"
                " give a multi-process run a shared filesystem path (NFS, Lustre)."
            )
        remote = RemoteRunDirectory(str(url))
        OPENED.append(remote.open())
        snapshot = remote.snapshot
        pulled = f"snapshot {snapshot.number} pulled" if snapshot is not None else "a new run"
        rank_zero_info(f"sclc: {url} ({pulled}) is worked on in {remote.local}.")
        config.run_dir = str(remote.local)
        self._remote = remote

    def instantiate_classes(self) -> None:
        super().instantiate_classes()  # type: ignore[misc]
        if self._marker is not None:  # before the fit makes their folders (before any set-up hook)
            self._marker.loggers = list(self.trainer.loggers)  # type: ignore[attr-defined]
        if self._remote is not None:  # after ModelCheckpoint: a generation's snapshot holds its checkpoint
            self.trainer.callbacks.append(RemoteSync(self._remote))  # type: ignore[attr-defined]

    def parse_arguments(self, parser: Any, args: Any) -> None:
        # argparse's "unrecognized arguments: --loop.generatons 3" gets the option meant.
        try:
            super().parse_arguments(parser, args)  # type: ignore[misc]
        except argparse.ArgumentError as err:
            hint = _did_you_mean(str(err), _option_strings(parser))
            if not hint:
                raise
            raise argparse.ArgumentError(None, f"{err}; {hint}") from err

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config  # type: ignore[attr-defined]
        if not config.get("run_dir"):
            configs = config.get("config") or []
            name = Path(str(configs[-1])).stem if configs else "run"
            config.run_dir = os.path.join("runs", name, time.strftime("%Y%m%d-%H%M%S"))
        # a given run_dir was settled (`~`, `..`) in _parse_ckpt_path, which Lightning calls first
        if self._marker is not None and self._remote is None:  # a refused attempt removes what it made
            self._marker.note_run_dir(str(config.run_dir))
        check_run_dir(str(config.run_dir))  # before any logger starts (W&B writes as it is made)
        follow_run_dir(config)  # a run's config.yaml under another --run_dir
        check_resumed_folder(config.get("ckpt_path"), str(config.run_dir))
        config.trainer.default_root_dir = config.run_dir
        check_shared_shapes(_init_args(config.get("model")), _init_args(config.get("data")))
        if config.trainer.get("logger") in (None, True):
            config.trainer.logger = self._default_loggers(config)
        _settle_loop(config.loop)
        if config.loop.get("output_dir") is None:
            config.loop.output_dir = os.path.join(config.run_dir, "synthetic")
        if self._remote is not None:
            _inside_remote(str(config.loop.output_dir), self._remote)

    def _default_loggers(self, config: Namespace) -> list[Namespace]:
        """The loggers of a run whose trainer has none configured: CSV in ``<run_dir>/logs``, and
        W&B in ``<run_dir>/wandb`` unless ``--wandb false`` or ``WANDB_MODE=disabled``."""
        loggers = [
            Namespace(
                class_path=f"{self.NAMESPACE}.loggers.CSVLogger",
                init_args=Namespace(save_dir=config.run_dir, name="logs"),
            )
        ]
        mode = os.environ.get("WANDB_MODE", "offline").lower()
        if config.get("wandb") and mode != "disabled":
            # Offline unless the user's W&B settings say online; never asks for a key.
            loggers.append(
                Namespace(
                    class_path=f"{self.NAMESPACE}.loggers.WandbLogger",
                    init_args=Namespace(
                        save_dir=config.run_dir,
                        project=os.environ.get("WANDB_PROJECT", "sclc-lightning"),
                        name=Path(config.run_dir).name,
                        offline=mode not in ("online", "run"),
                    ),
                )
            )
        return loggers

    def _load_init_weights(self) -> None:
        config = self.config[self.subcommand]  # type: ignore[attr-defined]
        if not config.get("init_weights") or config.get("ckpt_path"):
            return  # a resumed run gets its weights from the checkpoint
        model = self.model  # type: ignore[attr-defined]
        loaded = load_initial_weights(model, config.init_weights, config.get("init_weights_module"))
        rank_zero_info(
            f"sclc: loaded {loaded['tensors']} tensors from {loaded['path']}"
            f" into {type(model).__name__}{'.' + str(loaded['module']) if loaded['module'] else ''}."
        )

    def before_fit(self) -> None:
        self._load_init_weights()

    def before_validate(self) -> None:
        self._load_init_weights()

    def before_test(self) -> None:
        self._load_init_weights()


class SCLCCLI(_SCLCCommand, LightningCLI):
    """LightningCLI with the loop under its own ``loop:`` key and a directory per run."""


def cli_class(namespace: str) -> type[Any]:
    """The ``sclc fit`` command for models of ``namespace`` (``lightning.pytorch`` or
    ``pytorch_lightning``, whose Trainer and CLI the command then uses)."""
    if namespace == "lightning.pytorch":
        return SCLCCLI
    base = importlib.import_module(f"{namespace}.cli").LightningCLI
    return type("SCLCCLI", (_SCLCCommand, base), {"NAMESPACE": namespace})


def _class_path(value: str) -> str | None:
    """The class path in a ``--model`` value: a class path, or YAML/JSON with a ``class_path``."""
    text = value.strip()
    if text.startswith("{"):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
        return loaded.get("class_path") if isinstance(loaded, dict) else None
    return text or None


def _configured_model(args: Sequence[str]) -> str | None:
    """The model's class path that ``args`` configure (the last one given), without parsing them
    fully: ``model.class_path`` in ``--config`` files, then ``--model`` / ``--model.class_path``."""
    found: str | None = None
    for index, arg in enumerate(args):
        key, equals, value = arg.partition("=")
        if not equals:
            value = args[index + 1] if index + 1 < len(args) else ""
        if key == "--config":
            try:
                loaded = yaml.safe_load(Path(value).read_text())
            except (OSError, yaml.YAMLError):
                continue
            model = loaded.get("model") if isinstance(loaded, dict) else None
            if isinstance(model, dict) and model.get("class_path"):
                found = str(model["class_path"])
        elif key in ("--model", "--model.class_path"):
            found = _class_path(value) or found
    return found


def model_namespace(args: Sequence[str]) -> str:
    """``"pytorch_lightning"`` when the configured model derives from
    ``pytorch_lightning.LightningModule``, else ``"lightning.pytorch"``.

    Examples:
        >>> model_namespace(["fit", "--model", "sclc_lightning.models.GaussianModel"])
        'lightning.pytorch'
    """
    path = _configured_model(args)
    if path is None or "." not in path:
        return "lightning.pytorch"
    module_name, _, name = path.rpartition(".")
    try:
        model = getattr(importlib.import_module(module_name), name)
    except Exception:  # not importable here: the full parse reports it
        return "lightning.pytorch"
    if not isinstance(model, type) or issubclass(model, LightningModule) or "pytorch_lightning" not in sys.modules:
        return "lightning.pytorch"  # a module of the other package imported it, or it is not a module
    import pytorch_lightning

    return "pytorch_lightning" if issubclass(model, pytorch_lightning.LightningModule) else "lightning.pytorch"


def _plain(value: Any) -> Any:
    """``value`` as JSON would store it (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value, default=str))


def _processes(devices: Any, num_nodes: Any) -> int:
    """How many processes the trainer's ``devices`` and ``num_nodes`` ask for, where they say it
    (``"auto"``, ``-1``: 1 here; the run itself refuses several later).

    Examples:
        >>> _processes(2, 1), _processes("0,1", None), _processes([0], 2), _processes("auto", 1)
        (2, 2, 2, 1)
    """
    nodes = num_nodes if isinstance(num_nodes, int) and num_nodes > 0 else 1
    if isinstance(devices, (list, tuple)):
        return len(devices) * nodes
    text = str(devices).strip() if devices is not None else ""
    if "," in text:
        return len([part for part in text.split(",") if part.strip()]) * nodes
    count = int(text) if text.isdigit() else (devices if isinstance(devices, int) and devices > 0 else 1)
    return max(count, 1) * nodes


def _inside_remote(output_dir: str, remote: RemoteRunDirectory) -> None:
    """Refuse a loop's ``output_dir`` outside the local folder of a run on object storage: its
    synthetic data would never be published, and a resume elsewhere would lack it.

    Raises:
        CLIError: naming both.
    """
    if not Path(output_dir).resolve().is_relative_to(remote.local.resolve()):
        raise CLIError(
            f"--loop.output_dir {output_dir} lies outside the run on object storage ({remote.url}, worked on in"
            f" {remote.local}): its synthetic data would never be published. Leave output_dir unset."
        )


def check_run_dir(run_dir: str) -> None:
    """Refuse a ``--run_dir`` that cannot be the run's folder, in one line saying what the path
    is: a file, a folder inside a file, something other than a folder, or a folder this process
    cannot write.

    Raises:
        CLIError: naming the path and what it is.

    Examples:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as handle:
        ...     try:
        ...         check_run_dir(handle.name)
        ...     except CLIError as err:
        ...         print(str(err).split(": ", 1)[1][:24])
        it is a regular file, no
    """
    try:
        check_local_folder(run_dir, "--run_dir")
    except ValueError as err:
        raise CLIError(str(err)) from None
    path = Path(run_dir)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            kind = "a regular file" if path.is_file() else "a special file or a broken link"
            raise CLIError(f"--run_dir {run_dir}: it is {kind}, not a folder; give a folder for the run.")
        if not os.access(path, os.W_OK | os.X_OK):
            raise CLIError(f"--run_dir {run_dir}: this process cannot write in that folder.")
        return
    for parent in path.parents:  # the nearest part that exists must be a writable folder
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"--run_dir {run_dir}: {parent} is a file, so no folder can be made under it.")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CLIError(f"--run_dir {run_dir}: this process cannot make a folder in {parent}.")
            return


def _moved_into(path: Any, old: str, new: str) -> str | None:
    """``path`` moved from the folder ``old`` into ``new`` when it is ``old`` or lies inside it,
    as written (``runs/a/synthetic`` in ``runs/a``); ``None`` for a path elsewhere.

    Examples:
        >>> _moved_into("runs/a/synthetic", "runs/a/", "runs/b"), _moved_into("/data", "runs/a", "runs/b")
        ('runs/b/synthetic', None)
    """
    if not isinstance(path, (str, os.PathLike)):
        return None
    inside = os.path.relpath(os.path.abspath(path), os.path.abspath(old))
    if inside == os.pardir or inside.startswith(os.pardir + os.sep):
        return None
    return new if inside == os.curdir else os.path.join(new, inside)


def _follow(init_args: Any, key: str, old: str, new: str) -> bool:
    """Re-point ``init_args[key]`` from the folder ``old`` into ``new``; whether it moved."""
    moved = _moved_into(init_args.get(key), old, new) if isinstance(init_args, Namespace) else None
    if moved is not None:
        init_args[key] = moved
    return moved is not None


def follow_run_dir(config: Namespace) -> None:
    """Re-point the paths that a run's ``config.yaml`` took from its run folder into the
    ``--run_dir`` of this command: the loop's ``output_dir``, the loggers' ``save_dir`` (and the
    W&B run's name) and the callbacks' ``dirpath`` (``ModelCheckpoint``) that lie in that folder.
    The folder is the configuration's ``trainer.default_root_dir``, which ``sclc fit`` records as
    the run's folder, when it is one (it holds a ``config.yaml``) or is gone (a run folder moved
    away); a recipe's own ``default_root_dir`` (``.``, ``experiments/``) is no run folder, and a
    path set anywhere else is kept.

    Examples:
        >>> config = Namespace(run_dir="new", trainer=Namespace(default_root_dir="gone", logger=None),
        ...                    loop=Namespace(output_dir="gone/synthetic"))
        >>> follow_run_dir(config)
        >>> config.loop.output_dir
        'new/synthetic'
    """
    old, new = config.trainer.get("default_root_dir"), str(config.run_dir)
    if not old or os.path.abspath(old) == os.path.abspath(new):
        return  # no recorded folder, or the same one
    if Path(old).exists() and not (Path(old) / "config.yaml").is_file():
        return  # a folder, but not a run's
    _follow(config.loop, "output_dir", old, new)
    for logger in _listed(config.trainer.get("logger")):
        if not isinstance(logger, Namespace) or not _follow(logger.get("init_args"), "save_dir", old, new):
            continue
        if str(logger.get("class_path")).endswith(".WandbLogger") and logger.init_args.get("name") == Path(old).name:
            logger.init_args.name = Path(new).name
    for callback in _listed(config.trainer.get("callbacks")):
        _follow(callback.get("init_args") if isinstance(callback, Namespace) else None, "dirpath", old, new)


def _listed(value: Any) -> list[Any]:
    """``value`` as a list: a list as it is, ``None`` as none, anything else as one item."""
    return value if isinstance(value, list) else [] if value is None else [value]


def _run_folder(path: Path) -> Path | None:
    """The run folder ``path`` lies in: the nearest folder above it holding a ``metrics.csv``
    beside the run's ``config.yaml`` or its synthetic data's manifest."""
    for folder in path.absolute().parents:
        if (folder / "metrics.csv").is_file() and (
            (folder / "config.yaml").is_file() or (folder / "synthetic" / "manifest.json").is_file()
        ):
            return folder
    return None


def check_resumed_folder(ckpt_path: str | None, run_dir: str) -> None:
    """Refuse to resume a checkpoint that lies in the folder of another run than ``run_dir``:
    the run would go on in ``run_dir``. A copied run folder resumed from its ``config.yaml``,
    which names the original as ``run_dir``, would otherwise extend the original.

    Raises:
        ValueError: naming the checkpoint's run folder and ``run_dir``.
    """
    if not ckpt_path or not Path(ckpt_path).is_file():
        return  # no checkpoint, or one Lightning finds itself ("hpc", "best")
    folder = _run_folder(Path(ckpt_path))
    if folder is None or folder.resolve() == Path(run_dir).resolve():
        return
    raise ValueError(
        f"--ckpt_path {ckpt_path} is a checkpoint of the run in {folder}, but --run_dir is {run_dir}: a run"
        f" goes on in its own folder. Resume the run in {folder} with --run_dir {folder}, or the one in"
        f" {run_dir} from its own checkpoint (--ckpt_path last); to start a new run in {run_dir} from a"
        " config.yaml that names this checkpoint, add --ckpt_path null."
    )


#: A text that means infinity: ``inf``, ``Infinity`` or YAML's ``.inf``, signed or not, any case.
_INFINITY = re.compile(r"\s*([+-]?)(?:inf|infinity|\.inf)\s*", re.IGNORECASE)


def numbers_from_text(value: Any) -> Any:
    """``value`` with each text that means infinity (``inf``, ``Infinity``, ``.inf``, signed)
    made a float, in nested mappings and lists (a new container; other values as given).

    On the command line (and in YAML, which reads only ``.inf``) a value in a ``dict[str, Any]``
    such as ``corrector_kwargs`` arrives as the text typed; a number like ``2.5`` or ``1e-3``
    arrives as a number already. ``nan`` and other text are left for the loop's checks.

    Examples:
        >>> numbers_from_text({"strength": "inf", "name": "info", "low": "-Infinity"})
        {'strength': inf, 'name': 'info', 'low': -inf}
    """
    if isinstance(value, Mapping):
        return {key: numbers_from_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [numbers_from_text(item) for item in value]
    found = _INFINITY.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        return value
    return -math.inf if found.group(1) == "-" else math.inf


def _settle_loop(loop: Namespace) -> None:
    """The loop's settings as the command line means them: the recipe's corrector settings
    dropped with its corrector, infinity typed as text in the ``*_kwargs`` mappings a number."""
    if loop.get("corrector") is None and loop.get("corrector_kwargs"):
        # `--loop.corrector null` (or `--set loop.corrector=kmeans,null`) on a recipe that
        # configures its corrector: the recipe's corrector settings go with it.
        rank_zero_info(
            f"sclc: loop.corrector is null, so the recipe's loop.corrector_kwargs"
            f" {dict(loop.corrector_kwargs)} are not used."
        )
        loop.corrector_kwargs = None
    for key, value in list(vars(loop).items()):
        if key.endswith("_kwargs") and isinstance(value, Mapping):
            loop[key] = numbers_from_text(value)


def last_checkpoint(run_dir: str | None) -> Path:
    """What ``--ckpt_path last`` means: the most advanced checkpoint under ``run_dir`` that holds
    the loop's state of the run whose data is in ``run_dir/synthetic``.

    Raises:
        ValueError: no ``--run_dir``, or no such checkpoint in it (naming the folder).
    """
    if not run_dir:
        raise ValueError("--ckpt_path last needs the --run_dir of the run to resume.")
    from sclc_lightning.store.checkpoints import latest_checkpoint

    found = latest_checkpoint(Path(run_dir))
    if found is None:
        raise ValueError(
            f"--ckpt_path last: {run_dir} holds no checkpoint of the loop to resume from; pass the run's"
            " --run_dir, or a checkpoint file."
        )
    return found


def _init_args(block: Any) -> dict[str, Any]:
    """The ``init_args`` of a ``class_path`` block of the configuration, as a dict."""
    if not isinstance(block, Namespace) or not isinstance(block.get("init_args"), Namespace):
        return {}
    return dict(block.init_args.as_dict())


def _close_wandb(failed: bool) -> None:
    """Finish the W&B run the command opened and wait until its files are written.

    ``WandbLogger`` leaves the run open, and W&B writes an offline run's ``.wandb`` file from a
    background service: without this, the file can still be empty when ``sclc fit`` returns.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    wandb.finish(exit_code=1 if failed else 0)
    wandb.teardown()


def run_lightning_cli(args: Sequence[str] | None, debug: bool = False) -> None:
    """Run ``sclc fit|validate|test ARGS`` in this process (``None``: read ``sys.argv``) and close
    the W&B run it opened, even when it fails.

    Raises:
        CLIError: a bad argument or value, or a configuration refused before training started;
            or, during training, a run directory, a model's or corrector's output or an external
            corrector refused (unless ``debug``: then the original error).
    """
    marker = _TrainingStarted()
    failed = True
    command = cli_class(model_namespace(list(sys.argv[1:] if args is None else args)))
    try:
        try:
            command(args, marker=marker)
        except BaseException as err:  # refused, failed or interrupted before training: nothing left behind
            if not marker.started:
                marker.note_wandb_run()
                _close_wandb(True)
                marker.discard_logs()
            said = isinstance(err, _SETUP_ERRORS + _RUN_ERRORS)
            if not said or debug or (marker.started and not isinstance(err, _RUN_ERRORS)):
                raise
            raise CLIError(_message(err)) from err
        failed = False
    finally:
        _close_wandb(failed)
        while OPENED:  # a run on object storage: its lease given up, even when the fit failed early
            OPENED.pop().close()
