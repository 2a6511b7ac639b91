"""Deprecated package: its modules moved to packages named after their jobs.

| old path | new path |
|---|---|
| `sclc_lightning.data.items`, `contract`, `real` | `sclc_lightning.items` |
| `sclc_lightning.data.store`, `manifest`, `verification`, `lock` | `sclc_lightning.store` |
| `sclc_lightning.data.policies`, `mixing`, `budget` | `sclc_lightning.mixing` |
| `sclc_lightning.data.toy`, `images`, `motion`, `text` | `sclc_lightning.datasets` |
| seeds (`derive_seed`, `make_generator`) | `sclc_lightning.seeding` |

Every old path still imports, with a :class:`DeprecationWarning`; recipes and the
``config.yaml`` of run directories written before the move still resolve.
"""

from sclc_lightning._lazy import forward

__getattr__, __dir__ = forward(
    __name__, "sclc_lightning.items", "sclc_lightning.store", "sclc_lightning.mixing", "sclc_lightning.seeding"
)
