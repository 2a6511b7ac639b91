"""Child processes that do not outlive the fit that started them, even after ``kill -9``.

On Linux a child asks the kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
Python workers call :func:`die_with_parent` as their initializer; external programs start through a
tiny launcher (:func:`launcher_arguments`) that does the same and then ``exec``s the program, so
no ``preexec_fn`` runs in a threaded parent. Elsewhere both do nothing, and the callers' own
clean-up (killing the process group) is all there is.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["die_with_parent", "launcher_arguments", "pid_alive"]

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
