"""``sclc grid``: the cartesian grid of a recipe (λ × γ × seeds, as the papers run it).

Every grid point is one ``sclc fit`` run in its own directory under ``--out``; ``runs.csv``
lists every point with its values, status, wall time and final metrics. Three launchers run the
points (``--launcher``):

- ``local`` (default): ``--jobs`` worker processes on this machine; with several GPUs each
  worker gets its own (``CUDA_VISIBLE_DEVICES``: the visible GPUs split into equal groups, or
  shared round-robin when there are fewer GPUs than workers; ``--gpus`` picks them);
- ``submitit-local``: submitit jobs on this machine, the code path of ``slurm``;
- ``slurm``: one SLURM job array through submitit, resources from ``--slurm.*`` or the recipe's
  ``slurm:`` section; preempted or timed-out points checkpoint, requeue and resume.

Rerunning the same command with the same ``--out`` skips finished points, resumes interrupted
ones from their last checkpoint and, with ``--rerun-failed``, retries failed ones. ``SIGINT`` or
``SIGTERM`` stops every point within ``--stop-timeout`` seconds (they checkpoint first). The
exit status is 0 when every point finished, 1 when one failed or is left, 128 + the signal when
stopped. ``--dry-run`` prints one ``sclc fit`` command line per point instead.

``--method NAME=SPEC`` (repeatable) adds a method axis: each value a bundle of loop settings
(inline JSON or a YAML file), so that a corrector runs with its own arguments and the next with
its own (a ``--set`` axis is Cartesian). From Python, :func:`run_grid` runs a grid and returns its
runs table.
"""

from sclc_lightning.grid.api import RunsTable, run_grid
from sclc_lightning.grid.main import main
from sclc_lightning.grid.points import GridPoint, expand_grid, gpu_slots, parse_seeds

__all__ = ["GridPoint", "RunsTable", "expand_grid", "gpu_slots", "main", "parse_seeds", "run_grid"]
