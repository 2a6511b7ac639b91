"""A stand-in for an external reward program: writes one reward per point, the first coordinate.

Usage: reward_program.py INPUT OUTPUT [pairs]

With ``pairs``, it writes the same values as an (m/2, 2) matrix: m values, not one per point.
"""

import sys

from safetensors.numpy import load_file, save_file


def main() -> int:
    source, target = sys.argv[1:3]
    data = load_file(source)["data"]
    values = data.reshape(len(data), -1)[:, 0].astype("float64")
    if sys.argv[3:] == ["pairs"]:
        values = values.reshape(-1, 2)
    save_file({"data": values}, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
