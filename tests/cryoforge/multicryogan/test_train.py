"""Tests of :mod:`cryoforge.multicryogan.train`."""

import torch

from cryoforge.jobs.trainer import Schedule
from cryoforge.multicryogan.config import McganConfig, McganTrainConfig
from cryoforge.multicryogan.fsccc import (
    align_to_reference,
    fsc_area,
)
from cryoforge.multicryogan.train import McganTrainer
from tests.helpers import homogeneous_stack


def test_training_on_a_homogeneous_noise_free_stack_improves_fsc():
    vol, data = homogeneous_stack()
    tr = McganTrainer(data, McganConfig(box=16, gwidth=8, cwidth=16),
                      McganTrainConfig(batch=16, poses=8, n_critic=2, seed=0))

    def score():
        placed, _ = align_to_reference(tr.volumes([[0.5]])[0], vol)
        return fsc_area(placed, vol)

    before = score()
    for step in range(1, 251):
        tr.train_step(step)
    after = score()
    assert after > before + 0.1, (before, after)


def test_same_seed_same_weights_and_resume(tmp_path):
    from cryoforge.jobs.runner import drive
    from cryoforge.multicryogan.train import train_mcgan_job

    _, data = homogeneous_stack(count=64)
    cfg, tc = McganConfig(box=16, gwidth=2, cwidth=4), McganTrainConfig(batch=8, poses=4, n_critic=2)
    ck = tmp_path / "m.pt"
    drive(train_mcgan_job(data, cfg, tc, Schedule(steps=3, validate_every=0), checkpoint=ck))
    drive(train_mcgan_job(data, cfg, tc, Schedule(steps=5, validate_every=0), checkpoint=ck))  # resumes at 3
    straight = tmp_path / "s.pt"
    drive(train_mcgan_job(data, cfg, tc, Schedule(steps=5, validate_every=0), checkpoint=straight))
    a = torch.load(ck, weights_only=True)["state_dicts"]["generator"]
    b = torch.load(straight, weights_only=True)["state_dicts"]["generator"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    from cryoforge.manifold import open_manifold

    m = open_manifold(ck)
    assert m.kind == "multicryogan" and m.latent_dim == 1 and m.box == 16 and m.voxel_size == 4.0
    assert m.decode([[0.0], [1.0]]).shape == (2, 16, 16, 16)
    assert m.data_labels[0] == "α=0.00" and len(m.data_latents) == 21
