"""A stand-in for an external corrector program (e.g. UHC in its own environment).

Usage: external_corrector.py MODE INPUT OUTPUT [CONDITIONS]
  clip     writes data clipped to [-1, 1] (safetensors or .npy, following INPUT's suffix)
  label    writes data + conditions (one per row) to check the conditions arrive
  fail     prints to stderr and exits with code 3
  hang     sleeps (the corrector's timeout must kill it)
  shape    writes one row too few
  nan      writes NaNs
  nothing  writes nothing and exits 0
  int8     writes the clipped data as int8; bool: as booleans (data > 0); float64: as float64
"""

import sys
import time

import numpy as np


def main() -> int:
    mode, source, target = sys.argv[1:4]
    if source.endswith(".npy"):
        data = np.load(source)
        conditions = np.load(sys.argv[4]) if len(sys.argv) > 4 else None
    else:
        from safetensors.numpy import load_file

        tensors = load_file(source)
        data, conditions = tensors["data"], tensors.get("conditions")
    if mode == "fail":
        print("loading the policy", file=sys.stderr)
        print("ERROR: the humanoid fell over", file=sys.stderr)
        return 3
    if mode == "hang":
        print("thinking forever", file=sys.stderr, flush=True)
        time.sleep(600)
    if mode == "nothing":
        return 0
    out = np.clip(data, -1, 1)  # keeps the dtype (float or int)
    if mode == "label":
        out = data + conditions.reshape(-1, *([1] * (data.ndim - 1))).astype(data.dtype)
    if mode == "shape":
        out = out[:-1]
    if mode == "nan":
        out = out * np.nan
    if mode in ("int8", "float64"):
        out = out.astype(mode)
    if mode == "bool":
        out = data > 0
    if target.endswith(".npy"):
        np.save(target, out)
    else:
        from safetensors.numpy import save_file

        save_file({"data": np.ascontiguousarray(out)}, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
