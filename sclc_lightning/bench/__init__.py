"""`sclc bench`: scoring correction methods against the field's collapse settings.

- :func:`run` runs a bench (a suite's tasks, the reference arms and your methods over seeds,
  through the grid machinery) and returns its card; ``sclc bench run`` is the command.
- :func:`compare` compares two cards task by task, with paired intervals.
- :mod:`~sclc_lightning.bench.tasks`: the tasks and suites; :mod:`~sclc_lightning.bench.methods`:
  a method as a named bundle of loop settings; :mod:`~sclc_lightning.bench.score`: the score and
  its interval; :mod:`~sclc_lightning.bench.card`: the card's layout.
"""

from sclc_lightning.bench.builtin import BUILTIN_METHODS, REFERENCES
from sclc_lightning.bench.card import read_card
from sclc_lightning.bench.compare import compare
from sclc_lightning.bench.methods import Method, parse_method
from sclc_lightning.bench.runner import BenchError, plan_bench, run
from sclc_lightning.bench.score import Interval, TaskScore, mean_interval, score_task
from sclc_lightning.bench.tasks import SUITES, TASKS, Task

__all__ = [
    "BUILTIN_METHODS",
    "REFERENCES",
    "SUITES",
    "TASKS",
    "BenchError",
    "Interval",
    "Method",
    "Task",
    "TaskScore",
    "compare",
    "mean_interval",
    "parse_method",
    "plan_bench",
    "read_card",
    "run",
    "score_task",
]
