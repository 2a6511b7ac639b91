import subprocess
import sys
from pathlib import Path

from sclc_lightning import __version__
from sclc_lightning.cli import main


def test_version_and_help(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"sclc-lightning {__version__}"
    assert main([]) == 0 and "usage: sclc" in capsys.readouterr().out
    assert main(["correctors"]) == 0 and "optimal_transport" in capsys.readouterr().out.split()


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("sclc")  # the console script beside this interpreter
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"sclc-lightning {__version__}"
