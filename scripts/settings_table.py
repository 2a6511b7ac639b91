"""Write the loop's settings table (sclc_lightning.loop.settings) into docs/loop.md."""

from pathlib import Path

from sclc_lightning.loop.settings import write_table

if __name__ == "__main__":
    page = Path(__file__).parents[1] / "docs" / "loop.md"
    print("updated" if write_table(str(page)) else "up to date")
