"""Child processes that do not outlive the fit that started them, even after ``kill -9``.

On Linux a child asks the kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
Python workers call :func:`die_with_parent` as their initializer; external programs start through a
tiny launcher (:func:`launcher_arguments`) that does the same and then ``exec``s the program, so
no ``preexec_fn`` runs in a threaded parent. Elsewhere both do nothing, and the callers' own
clean-up (killing the process group) is all there is.

A program's descendants can leave its process group (``setsid``) and, once it exits, its
parent-death chain. To find them all the same, an external program starts with a marker in its
environment (:data:`TREE_VARIABLE`), which every descendant inherits; :func:`kill_tree` kills
every process that carries it (Linux, read from ``/proc``), and :func:`kill_orphaned_trees` the
trees of fits that were killed before they could. A descendant that clears its environment
escapes this; cgroups would catch it, but need privileges a user's machine may not grant.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "TREE_VARIABLE",
    "default_workers",
    "die_with_parent",
    "kill_orphaned_trees",
    "kill_tree",
    "launcher_arguments",
    "pid_alive",
    "process_tree",
    "run_chunks",
    "stop_resource_tracker",
    "tree_marker",
]

#: The environment variable that marks every process of one external program's tree.
TREE_VARIABLE = "SCLC_PROCESS_TREE"

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(parent_pid: int) -> None:
    """Have this process killed when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def launcher_arguments(arguments: Sequence[str]) -> list[str]:
    """``arguments`` started through the parent-death launcher (Linux; unchanged elsewhere)."""
    if not sys.platform.startswith("linux"):
        return list(arguments)
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), *arguments]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_tree(root: int) -> set[int]:
    """``root`` and every process under it, read from ``/proc`` (Linux; processes started in
    sessions of their own, as torchrun's workers, included): what a test or benchmark kills to
    stop a run as a crash would."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        grown, found = bool(more), found | more
    return found


def tree_marker() -> str:
    """A new marker for one program's tree: ``<this pid>-<random>`` (the pid says whose it is)."""
    return f"{os.getpid()}-{uuid.uuid4().hex}"


def _marked() -> dict[int, str]:
    """``{pid: marker}`` of every process whose environment carries :data:`TREE_VARIABLE`."""
    found: dict[int, str] = {}
    key = TREE_VARIABLE.encode() + b"="
    try:
        entries = os.listdir("/proc")
    except OSError:  # not Linux
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:  # gone, or not ours
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(key):
                found[int(entry)] = variable[len(key) :].decode(errors="replace")
    return found


def _kill(pids: list[int]) -> list[int]:
    """``SIGKILL`` each of ``pids`` still there (never this process); those killed."""
    killed = []
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def kill_tree(marker: str) -> list[int]:
    """``SIGKILL`` every process carrying ``marker`` (the program and all it started, those that
    called ``setsid`` included); the pids killed."""
    return _kill([pid for pid, found in _marked().items() if found == marker])


def kill_orphaned_trees() -> list[int]:
    """``SIGKILL`` the processes of trees whose fit is gone (killed before it could end them)."""
    owners = {pid: marker.split("-", 1)[0] for pid, marker in _marked().items()}
    return _kill([pid for pid, owner in owners.items() if owner.isdigit() and not pid_alive(int(owner))])


def run_chunks(
    function: Callable[[Any], T],
    chunks: list[Any],
    num_workers: int,
    progress: Callable[[int], None] | None,
    sizes: list[int],
    start_method: str | None,
) -> list[T]:
    """``[function(chunk) for chunk in chunks]``, in ``num_workers`` worker processes (``0``/``1``:
    in this process), in the order of ``chunks``; ``progress(sizes[i])`` after chunk ``i``.

    Workers start with ``start_method`` (default ``fork`` where available) and die with this
    process, even when it is killed (:func:`die_with_parent`): they would otherwise wait forever.
    """
    results: list[Any] = [None] * len(chunks)
    if num_workers <= 1 or len(chunks) <= 1:
        for i, chunk in enumerate(chunks):
            results[i] = function(chunk)
            if progress:
                progress(sizes[i])
        return results
    method = start_method or ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(num_workers, context, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(function, chunk): i for i, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if progress:
                progress(sizes[i])
    return results


def default_workers() -> int:
    """Worker processes used by default: the CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def stop_resource_tracker() -> bool:
    """End the resource tracker process that multiprocessing's ``spawn`` starts, and wait for it.

    Left alone it ends only when this process exits, so a command that returns while it still
    runs leaves a process of its group behind (re-parented to init). Call it once every queue
    and lock of the spawned processes is gone (a later one would start a tracker again). Uses
    the tracker's ``_stop`` (CPython 3.8 and later); whether a running tracker was stopped.
    """
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    stop = getattr(tracker, "_stop", None)
    pid = getattr(tracker, "_pid", None)
    if tracker is None or not callable(stop) or getattr(tracker, "_fd", None) is None or not isinstance(pid, int):
        return False
    try:  # only a tracker this process started (a spawned child shares its parent's)
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    if parent != os.getpid():
        return False
    stop()
    return True
