"""Starting a loop from trained weights: checkpoints, safetensors, diffusers folders, `--init_weights`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sclc_lightning.models import ImageDDPM
from sclc_lightning.weights import load_initial_weights, read_state_dict

from .recipes.test_gaussian_recipes import run


def _tiny(seed: int, ema: float | None = 0.9) -> ImageDDPM:
    torch.manual_seed(seed)
    return ImageDDPM(
        image_size=8, channels=1, block_out_channels=[32, 32], layers_per_block=1, attention=False,
        timesteps=20, sampling_steps=5, ema_decay=ema,
    )  # fmt: skip


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _sample(model: ImageDDPM) -> torch.Tensor:
    return model.sample(3, generator=torch.Generator().manual_seed(0))


def test_lightning_checkpoint_loads_the_whole_model(tmp_path: Path) -> None:
    trained, fresh = _tiny(0), _tiny(1)
    assert not _equal(trained, fresh)
    torch.save({"epoch": 3, "state_dict": trained.state_dict(), "loops": {"x": 1}}, tmp_path / "gen0.ckpt")
    loaded = load_initial_weights(fresh, tmp_path / "gen0.ckpt")
    assert _equal(trained, fresh) and loaded["tensors"] == len(trained.state_dict())
    assert torch.equal(_sample(trained), _sample(fresh))


@pytest.mark.parametrize("layout", ["safetensors", "diffusers"])
def test_unet_weights_load_into_the_submodule_and_are_sampled(tmp_path: Path, layout: str) -> None:
    pretrained, model = _tiny(0), _tiny(1)
    if layout == "safetensors":
        path = tmp_path / "unet.safetensors"
        save_file(pretrained.unet.state_dict(), str(path))
    else:
        path = tmp_path / "unet"
        pretrained.unet.save_pretrained(str(path))  # diffusers' own folder layout
        assert (path / "config.json").is_file()
    load_initial_weights(model, path, module="unet")
    assert _equal(pretrained.unet, model.unet) and not _equal(pretrained.ema, model.ema)
    # The EMA copy still holds the fresh model's start, so sampling must use the loaded weights.
    assert model.sampling_net() is model.unet
    assert torch.equal(_sample(pretrained), _sample(model))


def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    model = _tiny(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = ImageDDPM(image_size=8, channels=1, block_out_channels=[32, 64], layers_per_block=1, attention=False)
    save_file(other.unet.state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match=r"do not fit ImageDDPM\.unet: .* of another shape \(.*\(64"):
        load_initial_weights(model, tmp_path / "other.safetensors", module="unet")
    with pytest.raises(ValueError, match=r"do not fit ImageDDPM: \d+ missing .*\d+ unexpected .*module="):
        load_initial_weights(model, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=r"no submodule 'decoder' .*children: unet, ema"):
        load_initial_weights(model, tmp_path / "other.safetensors", module="decoder")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_unreadable_files_are_refused_without_unpickling(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No weights file"):
        read_state_dict(tmp_path / "missing.ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"without diffusion_pytorch_model\.safetensors"):
        read_state_dict(tmp_path / "empty")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callback": _Opaque()}, tmp_path / "pickled.ckpt")
    with pytest.raises(ValueError, match="weights only"):  # an arbitrary object is never unpickled
        read_state_dict(tmp_path / "pickled.ckpt")
    torch.save({"w": "not a tensor"}, tmp_path / "strings.pt")
    with pytest.raises(ValueError, match="holds no state dict"):
        read_state_dict(tmp_path / "strings.pt")
    save_file({"w": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(
        read_state_dict(tmp_path / "w.safetensors")["w"], load_file(str(tmp_path / "w.safetensors"))["w"]
    )


class _Opaque:
    pass


def test_grid_point_from_a_shared_generation_zero_equals_the_full_run(tmp_path: Path) -> None:
    """Bertrand et al.'s protocol: every grid point starts from one converged generation 0.

    Generation 0 trained in its own run and loaded with ``--init_weights`` (``initial_images 0``)
    gives generation 1 exactly the synthetic data of a run that trains generation 0 itself.
    """
    budget = ["--loop.images_per_generation", "2560", "--loop.initial_images", "2560", "--data.init_args.n", "500"]
    quiet = ["--wandb", "false"]
    run(tmp_path, "eight_gaussians_ddpm", "full", *budget, *quiet, "--loop.generations", "1")
    run(tmp_path, "eight_gaussians_ddpm", "gen0", *budget, *quiet, "--loop.generations", "0")
    (ckpt,) = (tmp_path / "gen0" / "logs" / "version_0" / "checkpoints").glob("*.ckpt")
    rows = run(
        tmp_path, "eight_gaussians_ddpm", "from_gen0", *budget, *quiet,
        "--loop.generations", "1", "--loop.initial_images", "0", "--init_weights", str(ckpt),
    )  # fmt: skip
    assert [r["generation"] for r in rows] == [1.0] and rows[0]["num_synthetic"] == 500
    shard = Path("synthetic") / "gen_0001" / "shard_00000.safetensors"
    full, started = load_file(str(tmp_path / "full" / shard)), load_file(str(tmp_path / "from_gen0" / shard))
    assert torch.equal(full["data"], started["data"])
    untrained = run(
        tmp_path, "eight_gaussians_ddpm", "untrained", *budget, *quiet,
        "--loop.generations", "1", "--loop.initial_images", "0",
    )  # fmt: skip
    assert untrained[0]["num_synthetic"] == 500
    scratch = load_file(str(tmp_path / "untrained" / shard))
    assert not torch.allclose(full["data"], scratch["data"], atol=0.1)  # the loaded weights made the difference
    # A resumed run takes its weights from its checkpoint; --init_weights (here gone) is not read.
    (resume_from,) = (tmp_path / "from_gen0" / "logs" / "version_0" / "checkpoints").glob("*.ckpt")
    resumed = run(
        tmp_path, "eight_gaussians_ddpm", "from_gen0", *budget, *quiet,
        "--loop.generations", "2", "--loop.initial_images", "0", "--init_weights", str(tmp_path / "gone.ckpt"),
        "--ckpt_path", str(resume_from),
    )  # fmt: skip
    assert [r["generation"] for r in resumed] == [1.0, 2.0]


def _save_unet(folder: Path, **overrides: object) -> torch.nn.Module:
    from diffusers import UNet2DModel

    torch.manual_seed(3)
    config: dict = dict(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 32), layers_per_block=1,
        down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
    )  # fmt: skip
    unet = UNet2DModel(**{**config, **overrides})
    unet.save_pretrained(str(folder))
    return unet


def test_pretrained_unet_folder_gives_architecture_and_weights(tmp_path: Path) -> None:
    from sclc_lightning.models import ImageEDM

    saved = _save_unet(tmp_path / "unet")  # attention at the first level: not what the recipes build
    model = ImageDDPM(image_size=8, channels=1, timesteps=20, sampling_steps=4, pretrained_unet=str(tmp_path / "unet"))
    assert _equal(saved, model.unet) and model.unet.config.down_block_types[0] == "AttnDownBlock2D"
    assert model.hparams["pretrained_unet"] == str(tmp_path / "unet")
    loss = model.training_step(torch.rand(4, 1, 8, 8) * 2 - 1, 0)
    loss.backward()
    assert torch.isfinite(loss) and _sample(model).shape == (3, 1, 8, 8)
    edm = ImageEDM(image_size=8, channels=1, sampling_steps=4, pretrained_unet=str(tmp_path / "unet"))
    assert _equal(saved, edm.unet)


def test_pretrained_unet_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    _save_unet(tmp_path / "rgb", in_channels=3, out_channels=3)
    with pytest.raises(ValueError, match=r"does not fit: in_channels 3 \(the model has 1\), out_channels 3"):
        ImageDDPM(image_size=8, channels=1, pretrained_unet=str(tmp_path / "rgb"))
    with pytest.raises(ValueError, match=r"sample_size 8 \(the model has 32\)"):
        ImageDDPM(image_size=32, channels=3, pretrained_unet=str(tmp_path / "rgb"))
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        ImageDDPM(image_size=8, channels=1, pretrained_unet=str(tmp_path))
