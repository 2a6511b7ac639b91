r"""The command corrector: an external program corrects the synthetic batch through files.

This is how a corrector living in another environment plugs in (e.g. the UHC physics policy of
Gillman et al., which runs in its own Python environment): the loop writes the batch to a
temporary folder, runs the program, waits, and reads the corrected batch back.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from sclc_lightning._checks import NON_NEGATIVE, POSITIVE, bounded, check_arguments, plain_numbers
from sclc_lightning._process import (
    TREE_VARIABLE,
    kill_orphaned_trees,
    kill_tree,
    launcher_arguments,
    pid_alive,
    tree_marker,
)
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["CommandCorrector", "CorrectorProcessError"]

_FIELDS = ("input", "output", "conditions", "generation", "strength", "folder")
_FOLDER_PREFIX = "sclc-command-"
#: The most bytes of one stderr line an error message quotes.
_LINE_BYTES = 2000
T = TypeVar("T")


class CorrectorProcessError(RuntimeError):
    """The external program failed, hung, or wrote something unusable."""


@register_corrector("command")
@plain_numbers
class CommandCorrector(Corrector):
    r"""Run ``command`` on each generation's synthetic batch, through files.

    Before the run the placeholders of ``command`` are substituted:

    - ``{input}``: the synthetic batch. With ``file_format="safetensors"`` (default) one file with
      the tensors ``data`` (``(m, ...)``), ``source_index`` and, for conditional models with
      tensor conditions, ``conditions``; with ``"npy"`` the file ``input.npy`` holds ``data``
      and ``{conditions}`` names ``conditions.npy``.
    - ``{output}``: where the program must write the corrected ``data`` (a safetensors file with
      the tensor ``data``, or a ``.npy`` array), same shape as the input.
    - ``{generation}``, ``{strength}`` (:math:`\gamma`) and ``{folder}`` (the temporary folder).

    The program's output :math:`t` is blended as :math:`(y + \gamma t)/(1 + \gamma)`; the default
    :math:`\gamma = \infty` takes it as it is (the paper's physics correction). A non-zero exit
    code, a run longer than ``timeout`` seconds (the program and its children are killed), a
    missing output, or an output of the wrong shape or dtype (never cast) or with non-finite values stops the run with
    :class:`CorrectorProcessError`, giving the exit code and the last lines of the program's
    stderr.

    Args:
        command: a shell-like string (split with :mod:`shlex`, never run through a shell) or a
            list of arguments, with the placeholders above.
        strength: :math:`\gamma` (default ``inf``).
        timeout: seconds before the program is killed.
        file_format: ``"safetensors"`` or ``"npy"``.
        cwd: working directory of the program (default: the current one).
        env: extra environment variables for the program.
        keep_files: keep the temporary folder (its path is logged in the error) for debugging.
        stderr_lines: how many lines of stderr an error message quotes.
        pointwise: the program corrects each point on its own (its output row depends on its
            input row only): with several processes every rank then runs it on its own share.
            ``False`` (the default): global rank zero runs it once on the whole generation.

    Examples:
        >>> corrector = CommandCorrector("python fix.py --in {input} --out {output}")
        >>> corrector.arguments(Path("/tmp/x"), generation=3)[-3:]
        ['/tmp/x/input.safetensors', '--out', '/tmp/x/output.safetensors']
    """

    deciding = ("command", "file_format", "cwd", "env")
    operational = ("timeout", "keep_files", "stderr_lines", "pointwise")
    ranges = bounded(timeout=POSITIVE, stderr_lines=NON_NEGATIVE)
    supports = frozenset({"continuous", "discrete", "conditional"})

    def __init__(
        self,
        command: str | Sequence[str],
        strength: float = math.inf,
        timeout: float = 3600.0,
        file_format: Literal["safetensors", "npy"] = "safetensors",
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        keep_files: bool = False,
        stderr_lines: int = 20,
        pointwise: bool = False,
    ) -> None:
        super().__init__(strength)
        check_arguments(CommandCorrector, locals())
        if not isinstance(command, (str, list, tuple)) or (
            not isinstance(command, str) and not all(isinstance(a, (str, os.PathLike)) for a in command)
        ):
            raise ValueError(f"`command` must be a command line (text) or a list of its arguments, got {command!r}.")
        self.command = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not self.command:
            raise ValueError("`command` is empty.")
        if file_format not in ("safetensors", "npy"):
            raise ValueError(f"`file_format` must be 'safetensors' or 'npy', got {file_format!r}.")
        for flag, value in (("keep_files", keep_files), ("pointwise", pointwise)):
            if not isinstance(value, bool):
                raise ValueError(f"`{flag}` must be True or False, got {value!r}.")
        self.pointwise = pointwise
        if env is not None and (
            not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise ValueError(f"`env` must be a dict of strings to strings, got {env!r}.")
        for argument in self.command:
            try:
                argument.format(**dict.fromkeys(_FIELDS, ""))
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"`command` argument {argument!r} has an unknown placeholder ({err}); known: {list(_FIELDS)}"
                ) from None
        self.timeout, self.file_format, self.cwd = float(timeout), file_format, cwd
        self.env, self.keep_files, self.stderr_lines = dict(env or {}), keep_files, int(stderr_lines)

    def settings(self) -> dict[str, Any]:
        settings = super().settings()
        # Environment values may be secrets: the manifest records a digest of each.
        settings["env"] = {k: hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in sorted(self.env.items())}
        return settings

    def _paths(self, folder: Path) -> dict[str, Path]:
        suffix = ".safetensors" if self.file_format == "safetensors" else ".npy"
        return {
            "input": folder / f"input{suffix}",
            "output": folder / f"output{suffix}",
            "conditions": folder / ("input.safetensors" if self.file_format == "safetensors" else "conditions.npy"),
        }

    def arguments(self, folder: Path, generation: int) -> list[str]:
        """The program's argument list for a batch written to ``folder``."""
        paths = self._paths(folder)
        values = {
            "input": str(paths["input"]),
            "output": str(paths["output"]),
            "conditions": str(paths["conditions"]),
            "generation": str(generation),
            "strength": repr(self.strength),
            "folder": str(folder),
        }
        return [argument.format(**values) for argument in self.command]

    def _write(self, folder: Path, batch: SyntheticBatch) -> None:
        paths = self._paths(folder)
        conditions = batch.conditions if isinstance(batch.conditions, Tensor) else None
        if self.file_format == "safetensors":
            tensors = {"data": batch.data.contiguous(), "source_index": batch.source_index.contiguous()}
            if conditions is not None:
                tensors["conditions"] = conditions.contiguous()
            save_file(tensors, str(paths["input"]))
        else:
            np.save(paths["input"], batch.data.numpy())
            if conditions is not None:
                np.save(paths["conditions"], conditions.numpy())

    def load_output(self, folder: Path, tail: str) -> Tensor:
        """The ``data`` tensor the program wrote, as it is.

        Raises:
            CorrectorProcessError: no output file, or one that cannot be read.
        """
        path = self._paths(folder)["output"]
        if not path.exists():
            raise CorrectorProcessError(f"{self._who()} exited 0 but wrote no {path.name}.{tail}")
        try:
            if self.file_format == "safetensors":
                return load_file(str(path))["data"]
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except Exception as err:  # unreadable file, no `data` tensor
            raise CorrectorProcessError(f"{self._who()} wrote an unreadable {path.name}: {err!r}.{tail}") from err

    def _read(self, folder: Path, batch: SyntheticBatch, tail: str) -> Tensor:
        out = self.load_output(folder, tail)
        if tuple(out.shape) != tuple(batch.data.shape):
            raise CorrectorProcessError(
                f"{self._who()} wrote data of shape {tuple(out.shape)}, expected {tuple(batch.data.shape)}.{tail}"
            )
        if out.dtype != batch.data.dtype:
            raise CorrectorProcessError(
                f"{self._who()} wrote data of dtype {out.dtype}, but the synthetic data is {batch.data.dtype};"
                f" nothing is cast silently: write {batch.data.dtype} (numpy: {_numpy_name(batch.data.dtype)}).{tail}"
            )
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            raise CorrectorProcessError(f"{self._who()} wrote non-finite values.{tail}")
        return out

    def _who(self) -> str:
        return f"command corrector `{shlex.join(self.command)}`"

    def _tail(self, stderr_path: Path) -> str:
        """The last ``stderr_lines`` lines of the program's stderr, reading only the file's end
        (a program may write gigabytes there)."""
        if not stderr_path.exists():
            return ""
        wanted = max(self.stderr_lines, 1) * _LINE_BYTES
        with open(stderr_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - wanted))
            text = handle.read().decode(errors="replace")
        lines = text.splitlines()
        if size > wanted and lines:
            lines = lines[1:]  # the first may start in the middle of a line
        lines = [line[-_LINE_BYTES:] for line in lines[-self.stderr_lines :]] if self.stderr_lines else []
        return ("\nLast lines of its stderr:\n" + "\n".join(lines)) if lines else ""

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0:
            return batch.data
        out = self.run_program(batch, generation, lambda folder, tail: self._read(folder, batch, tail))
        return self.mix(batch.data, out, generator)

    def run_program(self, batch: SyntheticBatch, generation: int, read: Callable[[Path, str], T]) -> T:
        """Write ``batch``, run the program on it and return ``read(folder, stderr_tail)``; the
        program and what it started are killed on every exit path.

        Raises:
            CorrectorProcessError: a non-zero exit code or a timeout, with the end of its stderr.
        """
        _remove_orphaned_folders()
        kill_orphaned_trees()  # what a killed fit's program left running
        marker = tree_marker()
        folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-g{generation}-"))
        try:
            self._write(folder, batch)
            arguments = self.arguments(folder, generation)
            stderr_path = folder / "stderr.txt"
            start = time.perf_counter()
            with open(stderr_path, "wb") as stderr, open(folder / "stdout.txt", "wb") as stdout:
                process = subprocess.Popen(
                    launcher_arguments(arguments),  # the program dies with this process, even on kill -9
                    cwd=self.cwd,
                    env={**os.environ, **self.env, TREE_VARIABLE: marker},  # inherited by all it starts
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,  # its own process group, killed as a whole on every exit path
                )
                try:
                    code = process.wait(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    where = f" Files kept in {folder}." if self.keep_files else ""
                    raise CorrectorProcessError(
                        f"{self._who()} did not finish within {self.timeout:g} s (generation {generation});"
                        f" it was killed.{where}{self._tail(stderr_path)}"
                    ) from None
                finally:
                    _kill_group(process)  # its children too, and on Ctrl-C or any error
                    kill_tree(marker)  # and those that left its process group (setsid)
            tail = self._tail(stderr_path)
            if code != 0:
                where = f" Files kept in {folder}." if self.keep_files else ""
                raise CorrectorProcessError(
                    f"{self._who()} failed with exit code {code} after {time.perf_counter() - start:.1f} s"
                    f" (generation {generation}).{where}{tail}"
                )
            return read(folder, tail)
        finally:
            if not self.keep_files:
                shutil.rmtree(folder, ignore_errors=True)


def _numpy_name(dtype: torch.dtype) -> str:
    if dtype == torch.bfloat16:
        return "no numpy dtype, use safetensors"
    return str(torch.empty(0, dtype=dtype).numpy().dtype)


def _remove_orphaned_folders() -> None:
    """Remove the temporary folders of command correctors whose process is gone (killed)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-g*-*"):
        owner = folder.name[len(_FOLDER_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not pid_alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the program's process group (what it started too) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
