"""The self-consuming loop: the :class:`SelfConsumingLoop` callback and the parts it delegates to.

See ``docs/architecture.md`` for the map of these modules and the data flow of one generation.
"""

from sclc_lightning._trainer import current_generation, eval_mode, find_loop
from sclc_lightning.loop.callback import SelfConsumingLoop
from sclc_lightning.loop.fingerprint import ResumeRefused
from sclc_lightning.loop.records import GenerationRecord
from sclc_lightning.loop.sampling import SyntheticDataError

__all__ = [
    "GenerationRecord",
    "ResumeRefused",
    "SelfConsumingLoop",
    "SyntheticDataError",
    "current_generation",
    "eval_mode",
    "find_loop",
]
