"""Nothing a fit starts outlives it: kill -9 the parent, its children die too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from sclc_lightning._process import pid_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")


def _wait_for(paths: list[Path], seconds: float = 120.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(p.exists() and p.read_text().strip() for p in paths):
            return [int(p.read_text()) for p in paths]
        time.sleep(0.1)
    raise AssertionError(f"{paths} were not written")


def _dies(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid) or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False


def _start(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], start_new_session=True)


def test_command_corrector_program_dies_with_the_fit(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = _start(
        f"""
        import sys, torch
        from sclc_lightning.correctors.command import CommandCorrector
        from sclc_lightning.items.codec import SyntheticBatch
        program = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)"
        corrector = CommandCorrector([sys.executable, "-c", program, {str(pid_file)!r}])
        corrector.correct(SyntheticBatch(torch.zeros(2, 2), torch.arange(2)), generation=1,
                          generator=torch.Generator(), reference=None)
        """
    )
    try:
        (child,) = _wait_for([pid_file])
        folders = list(Path(tempfile.gettempdir()).glob(f"sclc-command-{parent.pid}-g1-*"))
        assert len(folders) == 1
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _dies(child), "the external program outlived the killed fit"
        from sclc_lightning.correctors.command import _remove_orphaned_folders

        _remove_orphaned_folders()  # what the next command corrector does first
        assert not folders[0].exists()
    finally:
        parent.kill()


_SETSID_PROGRAM = """
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
open(sys.argv[1], "w").write(str(grandchild.pid))
if sys.argv[2] == "wait":
    time.sleep(300)
sys.exit(3 if sys.argv[2] == "fail" else 0)
"""


@pytest.mark.parametrize("ending", ["fail", "wait"])
def test_a_setsid_grandchild_of_the_command_corrector_ends_with_it(tmp_path: Path, ending: str) -> None:
    """A program that starts a grandchild in a new session (``setsid``: out of the program's
    process group, out of the parent-death chain) and exits, or hangs until the timeout: the
    grandchild is killed with the program's tree."""
    import torch

    from sclc_lightning.correctors.command import CommandCorrector, CorrectorProcessError
    from sclc_lightning.items.codec import SyntheticBatch

    pid_file = tmp_path / "grandchild.pid"
    program = [sys.executable, "-c", _SETSID_PROGRAM, str(pid_file), ending]
    corrector = CommandCorrector(program, timeout=3.0 if ending == "wait" else 120.0)
    with pytest.raises(CorrectorProcessError, match="exit code 3" if ending == "fail" else "did not finish"):
        corrector.correct(
            SyntheticBatch(torch.zeros(2, 2), torch.arange(2)),
            generation=1,
            generator=torch.Generator(),
            reference=None,
        )
    (grandchild,) = _wait_for([pid_file])
    assert _dies(grandchild), "the setsid grandchild outlived the correction"


def test_a_setsid_grandchild_of_a_killed_fit_is_ended_by_the_next_correction(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    parent = _start(
        f"""
        import sys, torch
        from sclc_lightning.correctors.command import CommandCorrector
        from sclc_lightning.items.codec import SyntheticBatch
        program = {_SETSID_PROGRAM!r}
        corrector = CommandCorrector([sys.executable, "-c", program, {str(pid_file)!r}, "wait"])
        corrector.correct(SyntheticBatch(torch.zeros(2, 2), torch.arange(2)), generation=1,
                          generator=torch.Generator(), reference=None)
        """
    )
    try:
        (grandchild,) = _wait_for([pid_file])
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        from sclc_lightning._process import kill_orphaned_trees

        assert grandchild in kill_orphaned_trees()  # what the next command corrector does first
        assert _dies(grandchild)
    finally:
        parent.kill()


def test_worker_processes_die_with_the_fit(tmp_path: Path) -> None:
    """The pool of the physics and force-field correctors (`run_chunks`): killing the fit kills its workers."""
    files = [tmp_path / f"worker{i}.pid" for i in range(2)]
    parent = _start(
        f"""
        import os, time
        from sclc_lightning._process import run_chunks

        def work(path):
            open(path, "w").write(str(os.getpid()))
            time.sleep(300)

        run_chunks(work, {[str(f) for f in files]!r}, 2, None, [1, 1], "fork")
        """
    )
    try:
        workers = _wait_for(files)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert all(_dies(pid) for pid in workers), "workers outlived the killed fit"
    finally:
        parent.kill()
        for pid in _wait_for(files, 0.1) if all(f.exists() for f in files) else []:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
