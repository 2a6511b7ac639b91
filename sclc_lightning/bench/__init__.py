"""`sclc bench`: scoring correction methods against the field's collapse settings (issue 33).

Built so far: :mod:`sclc_lightning.bench.score`, the score of a method on a task between its two
reference arms, with its interval over seeds, and :mod:`sclc_lightning.bench.methods`, a method as a
named bundle of loop settings. The tasks, suites and the ``sclc bench`` command are not built yet.
"""

from sclc_lightning.bench.methods import Method, parse_method
from sclc_lightning.bench.score import Interval, TaskScore, mean_interval, score_task

__all__ = ["Interval", "Method", "TaskScore", "mean_interval", "parse_method", "score_task"]
