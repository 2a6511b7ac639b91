"""The run directory: where each generation's synthetic data is written, how it is described
(the manifest), how it is verified when read back, and the lock that keeps one run per folder.

- :mod:`~sclc_lightning.store.synthetic`: :class:`SyntheticStore` (shards, resume, pruning);
- :mod:`~sclc_lightning.store.manifest`: the manifest's format and :class:`RunDirectoryError`;
- :mod:`~sclc_lightning.store.verification`: digests and checks of what is read back;
- :mod:`~sclc_lightning.store.lock`: :class:`RunLock`;
- :mod:`~sclc_lightning.store.checkpoints`: the checkpoint a run directory resumes from;
- :mod:`~sclc_lightning.store.remote`, :mod:`~sclc_lightning.store.lease`: a run directory on
  object storage, published as snapshots, one writer at a time.
"""

from sclc_lightning.store.lock import RunDirectoryLocked, RunLock
from sclc_lightning.store.manifest import Manifest, RunDirectoryError, Shard, StoredGeneration
from sclc_lightning.store.synthetic import SyntheticSet, SyntheticStore

__all__ = [
    "Manifest",
    "RunDirectoryError",
    "RunDirectoryLocked",
    "RunLock",
    "Shard",
    "StoredGeneration",
    "SyntheticSet",
    "SyntheticStore",
]
