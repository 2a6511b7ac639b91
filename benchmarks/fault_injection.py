"""Fault injection: kill a self-consuming fit with SIGKILL, resume it, and compare; damage its run
directory in every way a user or a crash can, resume, and record what happens.

1. Kills. A small but real fit (a 2-D DDPM, accumulate mode with optimal-transport correction, a
   checkpoint every generation, ``metrics.csv``) runs in a subprocess and is killed, at random
   moments or at chosen points (while sampling, while writing shards, between a generation's
   folder and its manifest record, while saving a checkpoint, just after one, while training).
   It is then resumed from its latest checkpoint (or started again when it had none) until it
   finishes. Each resumed run must end with the final weights of an uninterrupted run, bit for
   bit, a ``metrics.csv`` with exactly one row per generation, and no temporary files left.
3. Bad input under ``sclc`` (``--bad-input``): each case runs the command in its own process and
   is classified ``named`` (non-zero exit, one or two lines, no traceback), ``traceback``,
   ``hang`` or ``silent`` (exit code 0).
2. Corruptions. A run crashed after generation 2's checkpoint is copied, damaged in one way, and
   resumed in-process; the outcome must be a refusal naming the file, or, for leftovers of
   interrupted writes, a clean resume identical to an uninterrupted run.

Usage::

    python benchmarks/fault_injection.py --kills 30          # random kills, then the chosen points
    python benchmarks/fault_injection.py --corruptions       # the corruption table
    python benchmarks/fault_injection.py --bad-input         # bad input under `sclc`, each in its own process
    python benchmarks/fault_injection.py --trust             # issue 31's trust cases, in-process (trust_faults.py)
    python benchmarks/fault_injection.py fit ROOT [--kill-at POINT]   # one fit (used by the above)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

GENERATIONS = 4
KILL_POINTS = ("sampling", "shard", "record", "checkpoint", "after-checkpoint", "training")


def _quiet() -> None:
    import logging

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint of the latest generation under ``root/checkpoints``."""
    found = sorted((root / "checkpoints").glob("epoch=*.ckpt"), key=lambda p: int(p.stem.split("=")[1]))
    return found[-1] if found else None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(point: str, trainer: Any, model: Any) -> None:
    """Make this process kill itself at ``point`` (second occurrence, so generation 0 is done)."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    import sclc_lightning.store.journal as journal
    import sclc_lightning.store.synthetic as store

    calls = {"n": 0}

    def nth(limit: int) -> bool:
        calls["n"] += 1
        return calls["n"] >= limit

    if point == "sampling":
        original_sample = model.sample
        model.sample = lambda *a, **k: _die() if nth(2) else original_sample(*a, **k)
    elif point == "shard":
        original_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if Path(src).name.startswith(".gen_0002.tmp"):
                _die()  # generation 2's shards written, its folder not yet in place
            original_replace(src, dst)

        store.os.replace = replace  # type: ignore[attr-defined]
    elif point == "record":
        original_append = journal.ManifestFiles.append

        def append(self: Any, manifest: Any, record: Any) -> None:
            if record.generation == 2:
                _die()  # generation 2's folder in place, its record not yet in the manifest's journal
            original_append(self, manifest, record)

        journal.ManifestFiles.append = append  # type: ignore[method-assign]
    elif point in ("checkpoint", "after-checkpoint"):
        original_save = TorchCheckpointIO.save_checkpoint

        def save(self: Any, *args: Any, **kwargs: Any) -> None:
            if point == "checkpoint" and nth(2):
                _die()
            original_save(self, *args, **kwargs)
            if point == "after-checkpoint" and nth(2):
                _die()

        TorchCheckpointIO.save_checkpoint = save  # type: ignore[method-assign]
    elif point == "training":
        original_step = model.training_step
        model.training_step = lambda *a, **k: _die() if trainer.global_step == 13 else original_step(*a, **k)
    else:
        raise ValueError(f"`--kill-at` must be one of {KILL_POINTS}, got {point!r}.")


def build(root: Path, generations: int = GENERATIONS) -> tuple[Any, Any, Any]:
    """The fit: model, data and trainer, all seeded."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    from sclc_lightning import SelfConsumingLoop
    from sclc_lightning.callbacks.generation_csv import GenerationCSV
    from sclc_lightning.datasets.toy import EightGaussiansDataModule
    from sclc_lightning.models import PointDDPM

    pl.seed_everything(0, verbose=False)
    model = PointDDPM(hidden=64, layers=2, timesteps=50, sampling_steps=50)
    data = EightGaussiansDataModule(n=200, n_test=8, batch_size=16)
    loop = SelfConsumingLoop(
        0.5,
        generations,
        images_per_generation=1600,
        mode="accumulate",
        corrector="optimal_transport",
        output_dir=root / "synthetic",
        shard_rows=25,  # several shards per generation
    )
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    trainer = pl.Trainer(
        default_root_dir=str(root),
        callbacks=[loop, checkpoints, GenerationCSV()],
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return model, data, trainer


def weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fit(root: Path, kill_at: str | None = None, resume: bool = True) -> str:
    """Run (or resume, from the latest checkpoint) the fit in ``root``; returns the final weights'
    digest, also written to ``root/weights.sha256``."""
    _quiet()
    root.mkdir(parents=True, exist_ok=True)
    model, data, trainer = build(root)
    if kill_at:
        _install_kill(kill_at, trainer, model)
    checkpoint = latest_checkpoint(root) if resume else None
    (root / "fit-started").write_text(str(time.time()))  # the import is over: kills from now on hit the fit
    start = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=None if checkpoint is None else str(checkpoint))
    (root / "fit-seconds").write_text(f"{time.perf_counter() - start:.3f}")
    digest = weights_digest(model)
    (root / "weights.sha256").write_text(digest)
    return digest


def rows_complete(root: Path, generations: int = GENERATIONS) -> bool:
    """``metrics.csv`` has exactly one row per generation 0..generations."""
    path = root / "metrics.csv"
    if not path.exists():
        return False
    with open(path, newline="") as handle:
        seen = [int(float(r["generation"])) for r in csv.DictReader(handle)]
    return seen == list(range(generations + 1))


def leftovers(root: Path) -> list[str]:
    """Temporary files of interrupted writes still in the run directory."""
    synthetic = root / "synthetic"
    return sorted(p.name for p in synthetic.iterdir() if ".tmp-" in p.name or ".stale-" in p.name)


# -- kills ------------------------------------------------------------------------------------------
def _spawn(root: Path, kill_at: str | None = None) -> subprocess.Popen[bytes]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "fit-started").unlink(missing_ok=True)
    command = [sys.executable, __file__, "fit", str(root), *(["--kill-at", kill_at] if kill_at else [])]
    with open(root / "log.txt", "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)


def _finish(root: Path) -> None:
    """Resume the fit in ``root`` (from its latest checkpoint) to the end."""
    code = _spawn(root).wait()
    if code != 0:
        raise RuntimeError(f"resuming the fit in {root} failed with exit code {code}; see {root / 'log.txt'}")


def kill_and_resume(root: Path, *, delay: float | None = None, kill_at: str | None = None) -> dict[str, Any]:
    """Kill a fit (``delay`` seconds after it starts fitting, or at ``kill_at``), resume it to the
    end, and describe the outcome."""
    process = _spawn(root, kill_at)
    if delay is not None:
        while not (root / "fit-started").exists() and process.poll() is None:
            time.sleep(0.01)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed = process.returncode == -signal.SIGKILL
    if not killed and process.returncode != 0:
        raise RuntimeError(f"the fit in {root} failed with exit code {process.returncode}; see {root / 'log.txt'}")
    checkpoint = latest_checkpoint(root)
    if killed:
        _finish(root)
    return {
        "killed": killed,
        "resumed_from": checkpoint.name if checkpoint else "start",
        "digest": (root / "weights.sha256").read_text(),
        "rows_complete": rows_complete(root),
        "leftovers": leftovers(root),
    }


def reference_digest(work: Path) -> tuple[str, float]:
    """The final weights of an uninterrupted run, and the duration of its fit."""
    root = work / "reference"
    if _spawn(root).wait() != 0:
        raise RuntimeError(f"the reference fit failed; see {root / 'log.txt'}")
    return (root / "weights.sha256").read_text(), float((root / "fit-seconds").read_text())


# -- corruptions ------------------------------------------------------------------------------------
def _manifest(root: Path) -> dict[str, Any]:
    """``manifest.json`` with every record in it (the journal folded in first), to be edited."""
    from sclc_lightning.store import SyntheticStore

    SyntheticStore(root / "synthetic").compact()
    return json.loads((root / "synthetic" / "manifest.json").read_text())


def _save_manifest(root: Path, payload: dict[str, Any]) -> None:
    (root / "synthetic" / "manifest.json").write_text(json.dumps(payload))


def _record(root: Path, change: Callable[[dict[str, Any]], None], generation: int = 1) -> None:
    payload = _manifest(root)
    change(next(r for r in payload["generations"] if r["generation"] == generation))
    _save_manifest(root, payload)


def _shard(root: Path, name: str = "shard_00001.safetensors", generation: int = 1) -> Path:
    return root / "synthetic" / f"gen_{generation:04d}" / name


def _edit_bytes(root: Path, change: Callable[[bytearray], None]) -> None:
    path = _shard(root)
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))


def _nan_with_digest(root: Path, generation: int = 1) -> None:
    """NaN in a shard, and the manifest's digest updated to match: only the value check finds it."""
    from safetensors.torch import load_file, save_file

    path = _shard(root, generation=generation)
    tensors = load_file(str(path))
    tensors["data"][0, 0] = float("nan")
    save_file(tensors, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _record(root, lambda r: r["shards"][1].__setitem__(2, digest), generation)


def _swap_manifest(root: Path, other: Path) -> None:
    _manifest(other)  # every record of the other run in its manifest.json
    shutil.copy(other / "synthetic" / "manifest.json", root / "synthetic" / "manifest.json")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _link(path: Path, target: str) -> None:
    path.unlink()
    path.symlink_to(target)


def _linked_folder(root: Path) -> None:
    synthetic = root / "synthetic"
    elsewhere = root / "elsewhere"
    shutil.move(str(synthetic / "gen_0001"), str(elsewhere))
    (synthetic / "gen_0001").symlink_to(elsewhere, target_is_directory=True)


def _journal(root: Path, change: Callable[[list[str]], list[str]]) -> None:
    path = root / "synthetic" / "manifest.journal"
    path.write_text("".join(change(path.read_text().splitlines(keepends=True))))


def _stale_leftovers(root: Path) -> None:
    synthetic = root / "synthetic"
    (synthetic / ".gen_0004.tmp-crash").mkdir()
    (synthetic / ".gen_0004.tmp-crash" / "shard_00000.safetensors").write_bytes(b"half")
    (synthetic / ".manifest.json.tmp-crash").write_text("{")
    (synthetic / "gen_0009").mkdir()


def _drop_record(root: Path) -> None:
    payload = _manifest(root)
    payload["generations"] = [r for r in payload["generations"] if r["generation"] != 1]
    _save_manifest(root, payload)


#: kind → (damage, expected: "refused" or "identical"). ``other`` is another run's directory.
CORRUPTIONS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "manifest.json deleted": (lambda r, o: (r / "synthetic" / "manifest.json").unlink(), "refused"),
    "manifest.json not JSON": (lambda r, o: (r / "synthetic" / "manifest.json").write_text("{oops"), "refused"),
    "manifest.json truncated": (
        lambda r, o: (r / "synthetic" / "manifest.json").write_text(
            (r / "synthetic" / "manifest.json").read_text()[:300]
        ),
        "refused",
    ),
    "manifest of another run": (_swap_manifest, "refused"),
    "generation record dropped": (lambda r, o: _drop_record(r), "refused"),
    "shard entry dropped": (
        lambda r, o: _record(r, lambda rec: (rec["shards"].pop(), rec.__setitem__("count", rec["count"] - 5))),
        "refused",
    ),
    "record count changed": (lambda r, o: _record(r, lambda rec: rec.__setitem__("count", 3)), "refused"),
    "record step changed": (lambda r, o: _record(r, lambda rec: rec.__setitem__("sampled_at_step", 1)), "refused"),
    "shard row count lowered": (lambda r, o: _record(r, lambda rec: rec["shards"][1].__setitem__(1, 20)), "refused"),
    "shard row count raised": (lambda r, o: _record(r, lambda rec: rec["shards"][1].__setitem__(1, 30)), "refused"),
    "shard name absolute (another run)": (
        lambda r, o: _record(r, lambda rec: rec["shards"][0].__setitem__(0, str(_shard(o, "shard_00000.safetensors")))),
        "refused",
    ),
    "shard name escaping the folder": (
        lambda r, o: _record(r, lambda rec: rec["shards"][0].__setitem__(0, "../gen_0002/shard_00000.safetensors")),
        "refused",
    ),
    "shard file deleted": (lambda r, o: _shard(r).unlink(), "refused"),
    "shard truncated": (lambda r, o: _shard(r).write_bytes(_shard(r).read_bytes()[:-40]), "refused"),
    "zeroed block in a shard": (
        lambda r, o: _edit_bytes(r, lambda b: b.__setitem__(slice(-48, -16), bytes(32))),
        "refused",
    ),
    "flipped byte in a shard": (lambda r, o: _edit_bytes(r, lambda b: b.__setitem__(-5, b[-5] ^ 0x10)), "refused"),
    "NaN in a shard, digest updated": (lambda r, o: _nan_with_digest(r), "refused"),
    "generation folder deleted": (lambda r, o: shutil.rmtree(r / "synthetic" / "gen_0001"), "refused"),
    "extra file in a generation folder": (
        lambda r, o: (r / "synthetic" / "gen_0001" / "extra.safetensors").write_bytes(b"x"),
        "refused",
    ),
    # no checkpoint vouches for generation 3: it is sampled again, never read
    "NaN in generation 3 (after the checkpoint)": (lambda r, o: _nan_with_digest(r, 3), "identical"),
    "leftovers of interrupted writes": (lambda r, o: _stale_leftovers(r), "identical"),
    "shard replaced by a FIFO": (lambda r, o: _fifo(_shard(r)), "refused"),
    "shard linked to /dev/zero": (lambda r, o: _link(_shard(r), "/dev/zero"), "refused"),
    "manifest.json replaced by a FIFO": (lambda r, o: _fifo(r / "synthetic" / "manifest.json"), "refused"),
    "generation folder is a symbolic link": (lambda r, o: _linked_folder(r), "refused"),
    "journal record changed, digest not": (
        lambda r, o: _journal(r, lambda lines: [lines[0], lines[1].replace('"count": ', '"count": 1'), *lines[2:]]),
        "refused",
    ),
    # the last append cut short by a crash: generation 3's record (after the checkpoint) is dropped
    "journal's last line cut short": (
        lambda r, o: _journal(r, lambda lines: [*lines[:-1], lines[-1][:30]]),
        "identical",
    ),
}


def crashed_run(root: Path) -> None:
    """A run that crashed at the start of generation 3, after generation 2's checkpoint (in-process)."""
    from lightning.pytorch.callbacks import Callback

    class Crash(Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.current_epoch == 3:
                raise _Crash("crash at generation 3")

    _quiet()
    model, data, trainer = build(root)
    trainer.callbacks.append(Crash())
    try:
        trainer.fit(model, datamodule=data)
    except _Crash:
        pass


class _Crash(RuntimeError):
    """The crash of :func:`crashed_run`."""


def corruption_outcome(damage: Callable[[Path, Path], None], base: Path, other: Path, work: Path) -> dict[str, Any]:
    """Copy the crashed run ``base``, damage it, resume it in-process and describe what happened."""
    from sclc_lightning.store import RunDirectoryError

    root = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(base, root, dirs_exist_ok=True)
    damage(root, other)
    _quiet()
    try:
        model, data, trainer = build(root)
        trainer.fit(model, datamodule=data, ckpt_path=str(root / "checkpoints" / "epoch=2.ckpt"))
    except (RunDirectoryError, ValueError, OSError) as err:
        message = str(err).splitlines()[0]
        names_file = str(root / "synthetic") in message or str(other / "synthetic") in message
        message = message.replace(str(root), "RUN").replace(str(other), "OTHER")
        return {"outcome": "refused", "error": type(err).__name__, "message": message, "names_file": names_file}
    return {"outcome": "resumed", "digest": weights_digest(model), "rows_complete": rows_complete(root)}


def corruption_table(work: Path, kinds: list[str] | None = None) -> list[dict[str, Any]]:
    """Every corruption kind (or ``kinds``) against a crashed run; one row each."""
    base, other = work / "base", work / "other"
    crashed_run(base)
    crashed_run(other)
    model, data, trainer = build(work / "uninterrupted")
    _quiet()
    trainer.fit(model, datamodule=data)
    reference = weights_digest(model)
    rows = []
    for kind in kinds or list(CORRUPTIONS):
        damage, expected = CORRUPTIONS[kind]
        outcome = corruption_outcome(damage, base, other, work)
        if outcome["outcome"] == "resumed":
            outcome["identical"] = outcome.pop("digest") == reference
        ok = (expected == "refused" and outcome["outcome"] == "refused" and outcome["names_file"]) or (
            expected == "identical" and outcome.get("identical") and outcome.get("rows_complete")
        )
        rows.append({"kind": kind, "expected": expected, **outcome, "ok": bool(ok)})
    return rows


# -- bad input under `sclc` --------------------------------------------------------------------------
_TOY = str(Path(__file__).parents[1] / "recipes" / "gaussian_toy.yaml")
_EXTERNAL = Path(__file__).parents[1] / "tests" / "correctors" / "scripts" / "external_corrector.py"


def _toy(*extra: str) -> list[str]:
    return ["fit", "--config", _TOY, "--wandb", "false", "--loop.generations", "2", *extra]


def _evil_checkpoint(path: Path) -> None:
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {path.parent / 'pwned'}",))

    path.write_bytes(pickle.dumps({"state_dict": {}, "payload": Payload()}))


def bad_inputs(work: Path) -> dict[str, tuple[Callable[[], None], list[str]]]:
    """Each case: how its folder is prepared, and the ``sclc`` command it runs."""
    run = work / "run"  # a finished run with checkpoints, shared by the resume cases
    last = ["--run_dir", str(run), "--ckpt_path", "last"]
    command = f"{sys.executable} {_EXTERNAL} fail {{input}} {{output}}"

    def fifo_in_run() -> None:
        copy = work / "fifo-run"
        shutil.copytree(run, copy)
        _fifo(next((copy / "synthetic" / "gen_0001").glob("shard_*.safetensors")))

    def grid_list() -> None:
        (work / "grid").mkdir(exist_ok=True)
        (work / "grid" / "grid.json").write_text("[1, 2]")

    return {
        "run_dir is a regular file": (lambda: (work / "afile").write_text("x"), _toy("--run_dir", str(work / "afile"))),
        "malicious checkpoint": (
            lambda: _evil_checkpoint(work / "evil.ckpt"),
            _toy("--run_dir", str(work / "evil"), "--ckpt_path", str(work / "evil.ckpt")),
        ),
        "external corrector fails": (
            lambda: None,
            _toy(
                "--run_dir",
                str(work / "ext"),
                "--loop.corrector",
                "command",
                "--loop.corrector_kwargs",
                json.dumps({"command": command}),
            ),
        ),
        "--ckpt_path last, no checkpoint": (
            lambda: None,
            _toy("--run_dir", str(work / "empty"), "--ckpt_path", "last"),
        ),
        "resume, a loop setting changed": (lambda: None, _toy(*last, "--loop.seed", "5")),
        "resume, other real data": (lambda: None, _toy(*last, "--data.init_args.n", "60")),
        "resume, a model setting changed": (lambda: None, _toy(*last, "--model.init_args.target_std", "2.0")),
        "resume, a shard is a FIFO": (
            fifo_in_run,
            _toy("--run_dir", str(work / "fifo-run"), "--ckpt_path", "last"),
        ),
        "grid.json holds a list": (grid_list, ["grid", "--config", _TOY, "--out", str(work / "grid")]),
        "report --out inside a run's data": (
            lambda: None,
            ["report", str(run), "--out", str(run / "synthetic" / "report")],
        ),
        "report of a broken config.yaml": (
            lambda: (shutil.copytree(run, work / "broken"), (work / "broken" / "config.yaml").write_text("x: [")),
            ["report", str(work / "broken"), "--out", str(work / "broken-report")],
        ),
    }


def bad_input_table(work: Path, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Every bad input under the ``sclc`` command, in its own process: ``named`` (a non-zero exit
    code, one or two lines, no traceback), ``traceback``, ``hang`` (past ``timeout``) or
    ``silent`` (exit code 0)."""
    work.mkdir(parents=True, exist_ok=True)
    sclc = str(Path(sys.executable).parent / "sclc")
    reference = subprocess.run([sclc, *_toy("--run_dir", str(work / "run"))], capture_output=True, timeout=timeout)
    if reference.returncode != 0:
        raise RuntimeError(f"the reference run failed: {reference.stderr.decode()[-2000:]}")
    rows = []
    for kind, (prepare, args) in bad_inputs(work).items():
        prepare()
        start = time.perf_counter()
        try:
            done = subprocess.run([sclc, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            rows.append({"kind": kind, "outcome": "hang", "seconds": timeout, "message": ""})
            continue
        seconds = time.perf_counter() - start
        err = done.stderr
        lines = [line for line in err.splitlines() if line.startswith(("sclc ", "(`sclc"))]
        if done.returncode == 0:
            outcome = "silent"
        elif "Traceback" in err:
            outcome = "traceback"
        else:
            outcome = "named" if 1 <= len(lines) <= 2 else "unclear"
        message = next((line for line in lines if line.startswith("sclc ")), err.strip()[-200:])
        rows.append({"kind": kind, "outcome": outcome, "seconds": seconds, "message": message})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["fit"], help="internal: run one fit")
    parser.add_argument("root", nargs="?", help="internal: the fit's folder")
    parser.add_argument("--kill-at", choices=KILL_POINTS, default=None)
    parser.add_argument("--kills", type=int, default=0, help="random kills (then one at each chosen point)")
    parser.add_argument("--corruptions", action="store_true", help="print the corruption table")
    parser.add_argument("--bad-input", action="store_true", help="print the table of bad input under `sclc`")
    parser.add_argument("--trust", action="store_true", help="print the table of trust cases (trust_faults.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.command == "fit":
        fit(Path(args.root), args.kill_at)
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="sclc-faults-"))
    failures = 0
    if args.kills:
        digest, seconds = reference_digest(work)
        print(f"uninterrupted fit: {seconds:.1f} s, final weights {digest[:12]}")
        rng = random.Random(args.seed)
        plans: list[tuple[str, float | None, str | None]] = [
            (f"random {i + 1}", rng.uniform(0.0, seconds), None) for i in range(args.kills)
        ] + [(f"at {point}", None, point) for point in KILL_POINTS]
        ok = 0
        for name, after, point in plans:
            result = kill_and_resume(work / name.replace(" ", "_"), delay=after, kill_at=point)
            good = result["digest"] == digest and result["rows_complete"] and not result["leftovers"]
            ok += good
            when = f"{after:.2f} s into the fit" if after is not None else f"at {point}"
            state = "killed" if result["killed"] else "finished before the kill"
            same = "identical" if result["digest"] == digest else "DIFFERENT"
            rows = "rows complete" if result["rows_complete"] else "rows INCOMPLETE"
            left = f", leftovers {result['leftovers']}" if result["leftovers"] else ""
            print(f"  {name:>20}: {state} {when}; resumed from {result['resumed_from']}: {same}, {rows}{left}")
        if ok == len(plans):
            print(f"{len(plans)} kills: resumed, identical, rows complete")
        else:
            print(f"{len(plans)} kills: resumed, identical, rows complete in only {ok} of them")
        failures += len(plans) - ok
    if args.corruptions:
        rows = corruption_table(work / "corruptions")
        print(f"{'damage':<36} {'expected':<10} outcome")
        for row in rows:
            if row["outcome"] == "refused":
                what = f"refused, {row['error']}: {row['message'][:90]}" + (
                    "" if row["names_file"] else " (NO FILE NAMED)"
                )
            else:
                what = f"resumed, {'identical' if row['identical'] else 'DIFFERENT'}"
            print(f"{row['kind']:<36} {row['expected']:<10} {what}")
        bad = [row["kind"] for row in rows if not row["ok"]]
        print(f"{len(rows)} corruptions: {len(rows) - len(bad)} as expected{'; NOT: ' + ', '.join(bad) if bad else ''}")
        failures += len(bad)
    if args.bad_input:
        rows = bad_input_table(work / "bad-input")
        for row in rows:
            print(f"{row['kind']:<36} {row['outcome']:<10} {row['seconds']:5.1f} s  {row['message'][:110]}")
        counts = {kind: sum(r["outcome"] == kind for r in rows) for kind in ("silent", "hang", "traceback", "unclear")}
        print(
            f"{len(rows)} bad inputs: {sum(r['outcome'] == 'named' for r in rows)} named in a line or two; "
            + ", ".join(f"{count} {kind}" for kind, count in counts.items())
        )
        failures += len(rows) - sum(r["outcome"] == "named" for r in rows)
    if args.trust:
        sys.path.insert(0, str(Path(__file__).parent))
        from trust_faults import trust_table

        rows = trust_table(work / "trust")
        for row in rows:
            print(f"{row['name']:<50} {row['kind']:<7} {row['outcome']:<7} {row['message'][:100]}")
        good = sum(r["outcome"] in ("named", "ok") for r in rows)
        counts = {kind: sum(r["outcome"] == kind for r in rows) for kind in ("silent", "late", "bare", "error")}
        print(f"{len(rows)} trust cases: {good} named or right; " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        failures += len(rows) - good
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
