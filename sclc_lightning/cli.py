"""The ``sclc`` command. Its experiment commands (``fit``, ``grid``, ``report``) come with the
recipes; for now it prints the version, the registered correctors and help."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from sclc_lightning import __version__

    parser = argparse.ArgumentParser(
        prog="sclc",
        description="Self-consuming and self-correcting generative training loops for PyTorch Lightning.",
    )
    parser.add_argument("--version", action="version", version=f"sclc-lightning {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("correctors", help="list the registered correctors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sclc`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "correctors":
        from sclc_lightning import available_correctors

        print("\n".join(available_correctors()))
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
