"""Tests of :mod:`cryoforge.multicryogan.model`."""

import pytest
import torch

from cryoforge.multicryogan.config import McganConfig
from cryoforge.multicryogan.model import Generator
from tests.helpers import save_format1_checkpoint


def test_generator_segment_prior_and_shapes():
    cfg = McganConfig(box=16, zdim=4, gwidth=4)
    gen = Generator(cfg)
    assert cfg.latent_dim == 1
    z = gen.latent(torch.tensor([[0.0], [1.0]]))
    assert torch.allclose(z[0], gen.z0) and torch.allclose(z[1], gen.z1)
    assert gen(torch.rand(3, 1)).shape == (3, 16, 16, 16)
    assert McganConfig(prior="gaussian", zdim=5).latent_dim == 5
    with pytest.raises(ValueError, match="powers of two"):
        McganConfig(box=24)


def test_mapping_network_starts_as_identity_learns_and_reloads(tmp_path):
    from cryoforge.configs import to_dict
    from cryoforge.io.checkpoint import save_checkpoint
    from cryoforge.multicryogan.train import load_generator

    cfg = McganConfig(box=16, zdim=4, gwidth=2, mapping=2)
    gen = Generator(cfg)
    coords = torch.rand(5, 1)
    z = gen.latent(coords)
    assert torch.equal(gen.mapping(z), torch.zeros_like(z))  # residual, last layer zero: training starts plain
    plain = Generator(McganConfig(box=16, zdim=4, gwidth=2))
    plain.load_state_dict({k: v for k, v in gen.state_dict().items() if not k.startswith("mapping.")})
    assert torch.allclose(gen(coords), plain(coords))
    gen(coords).square().mean().backward()
    assert gen.mapping[-1].weight.grad.abs().sum() > 0  # the zero layer still learns
    with pytest.raises(ValueError, match="mapping"):
        McganConfig(mapping=-1)

    with torch.no_grad():
        gen.mapping[-1].weight.normal_()
    config = {"architecture": to_dict(cfg), "voxel_size": 4.0}
    save_checkpoint(tmp_path / "m.pt", "multicryogan", config, {"generator": gen.state_dict()})
    back, _ = load_generator(tmp_path / "m.pt")
    assert back.cfg.mapping == 2 and torch.allclose(back(coords), gen(coords))
    # a format-1 checkpoint from before the mapping network (flat config, no "mapping") opens as the plain decoder
    old = {k: v for k, v in to_dict(cfg).items() if k != "mapping"}
    save_format1_checkpoint(tmp_path / "old.pt", "multicryogan", {**old, "pixel_size": 4.0, "train_lr": 1e-4},
                            list(old), {"generator": plain.state_dict()})
    back, payload = load_generator(tmp_path / "old.pt")
    assert back.mapping is None and torch.allclose(back(coords), plain(coords))
    assert payload["config"]["voxel_size"] == 4.0 and payload["config"]["train"] == {"lr": 1e-4}
