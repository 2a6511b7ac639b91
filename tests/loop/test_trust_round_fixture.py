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
    # Generation 1's shard and the checkpoint were written by the fixture's machine before the kill.
    # Where this machine rounds like it (the shard reproduces bit for bit), every shard and weight
    # must match exactly; elsewhere (another CPU's exp or FMA) the same draws, up to float rounding.
    fixture_shards = {(int(path.parent.name[4:]), path.name) for path in FIXTURE.glob("killed/s/gen_*/*.safetensors")}
    assert fixture_shards == {(1, "shard_00000.safetensors")}
    assert [g["generation"] for g in a["generations"]] == [g["generation"] for g in b["generations"]]
    same_numerics = a["generations"][0]["shards"] == b["generations"][0]["shards"]
    if same_numerics:
        assert [g["shards"] for g in a["generations"]] == [g["shards"] for g in b["generations"]]
    for ours, theirs in zip(a["generations"], b["generations"]):
        folder = f"gen_{ours['generation']:04d}"
        for shard, other in zip(ours["shards"], theirs["shards"], strict=True):
            assert shard[:2] == other[:2]
            full_shard = load_file(str(tmp_path / "full" / "s" / folder / shard[0]))
            resumed_shard = load_file(str(tmp_path / "killed" / "s" / folder / other[0]))
            assert torch.equal(full_shard["source_index"], resumed_shard["source_index"])
            torch.testing.assert_close(full_shard["data"], resumed_shard["data"], rtol=1e-5, atol=1e-6)
    recorded = load_file(str(FIXTURE / "uninterrupted.safetensors"))
    for key, value in recorded.items():
        if same_numerics and torch.backends.cpu.get_cpu_capability() == WRITTEN_ON:
            assert torch.equal(value, resumed.state_dict()[key]), key
        else:
            torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-5, atol=1e-6)
