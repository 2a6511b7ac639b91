"""`sclc bench`: scoring correction methods against the field's collapse settings (issue 33).

Built so far: :mod:`sclc_lightning.bench.score`, the score of a method on a task between its two
reference arms, with its interval over seeds. The tasks, suites, methods and the ``sclc bench``
command are not built yet.
"""

from sclc_lightning.bench.score import Interval, TaskScore, mean_interval, score_task

__all__ = ["Interval", "TaskScore", "mean_interval", "score_task"]
