"""Write the settings tables of the docs: the loop's (sclc_lightning.loop.settings) into
docs/loop.md, and each built-in corrector's, model corrector's, mixing policy's and callback's
(sclc_lightning._settings_tables) into docs/correctors.md, docs/model_correction.md,
docs/loop.md and docs/metrics.md."""

from pathlib import Path

from sclc_lightning._settings_tables import write_sections
from sclc_lightning.loop.settings import write_table

if __name__ == "__main__":
    docs = Path(__file__).parents[1] / "docs"
    changed = ["loop.md"] if write_table(str(docs / "loop.md")) else []
    changed += write_sections(docs)
    print("updated " + ", ".join(sorted(set(changed))) if changed else "up to date")
