"""A run directory written by main after the trust round (tests/fixtures/trust_round: killed by
SIGKILL while generation 2 drew its second selection round) resumes with today's code, bit for bit
what an uninterrupted run gives."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from helpers import manifest
from safetensors.torch import load_file

FIXTURE = Path(__file__).parents[1] / "fixtures" / "trust_round"
#: The CPU capability of the machine that wrote the fixture: there, the recorded weights are
#: matched bit for bit; elsewhere vectorised sums may round differently in the last bits.
WRITTEN_ON = "AVX512"


def test_the_trust_round_run_resumes_bit_identically(tmp_path: Path) -> None:
    sys.path.insert(0, str(FIXTURE))
    try:
        import frozen_run as run  # the fixture's frozen model and settings
    finally:
        sys.path.remove(str(FIXTURE))
    shutil.copytree(FIXTURE / "killed", tmp_path / "killed")
    assert [p.name for p in sorted((tmp_path / "killed" / "ck").glob("*.ckpt"))] == ["epoch=0.ckpt", "epoch=1.ckpt"]
    assert not manifest(tmp_path / "killed" / "s")["finished"]
    resumed = run.fit(tmp_path / "killed", ckpt_path=str(tmp_path / "killed" / "ck" / "epoch=1.ckpt"))
    full = run.fit(tmp_path / "full")
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    a, b = (manifest(tmp_path / x / "s") for x in ("full", "killed"))
    assert a["finished"] and b["finished"]
    assert [g["shards"] for g in a["generations"]] == [g["shards"] for g in b["generations"]]
    recorded = load_file(str(FIXTURE / "uninterrupted.safetensors"))
    for key, value in recorded.items():
        if torch.backends.cpu.get_cpu_capability() == WRITTEN_ON:
            assert torch.equal(value, resumed.state_dict()[key]), key
        else:
            torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-5, atol=1e-6)
