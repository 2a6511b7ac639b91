"""A stand-in for an external reward program: writes one reward per point, the first coordinate.

Usage: reward_program.py INPUT OUTPUT
"""

import sys

from safetensors.numpy import load_file, save_file


def main() -> int:
    source, target = sys.argv[1:3]
    data = load_file(source)["data"]
    save_file({"data": data.reshape(len(data), -1)[:, 0].astype("float64")}, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
