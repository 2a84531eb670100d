"""Tests of :mod:`cryoforge.drgn.train`."""

import numpy as np
import pytest
import torch

from cryoforge.drgn.data import ParticleImages, backproject
from cryoforge.jobs.trainer import Schedule
from tests.helpers import CRYODRGN, needs_hand_images


def _hand():
    from cryoforge.io.mrc import read_mrc
    from cryoforge.io.pickles import load_poses

    images, _ = read_mrc(CRYODRGN / "hand.mrcs", mmap=True)
    rot, _ = load_poses(CRYODRGN / "hand_rot.pkl")
    return ParticleImages(images, rot)


@needs_hand_images
def test_homogeneous_training_on_hand_images_improves_fsc():
    from cryoforge.drgn.config import DrgnConfig, DrgnTrainConfig
    from cryoforge.drgn.train import DrgnTrainer

    data = _hand()
    ref = backproject(data)  # the images' own direct reconstruction with their poses (independent of the decoder)
    torch.manual_seed(0)
    tr = DrgnTrainer(data, DrgnConfig(players=2, pdim=64, pe_dim=16), DrgnTrainConfig(lr=1e-3), reference=ref)
    before, _ = tr.validate(0)
    for step in range(1, 151):
        tr.train_step(step)
    after, previews = tr.validate(150)
    assert before["fsc_mean"] < 0.1 and after["fsc_mean"] > before["fsc_mean"] + 0.2
    assert after["fsc05_px"] < before["fsc05_px"] and after["mse_fixed_images"] < 0.3 * before["mse_fixed_images"]
    assert previews[1].array.shape == (64, 64, 64)


@needs_hand_images
def test_vae_trains_resumes_and_opens_as_a_manifold(tmp_path):
    from cryoforge.drgn.config import DrgnConfig, DrgnTrainConfig
    from cryoforge.drgn.train import train_drgn_job
    from cryoforge.jobs import Cancelled, drive
    from cryoforge.manifold import open_manifold

    data = _hand()
    cfg, train = DrgnConfig(zdim=2, players=1, pdim=32, qlayers=1, qdim=32, pe_dim=8), DrgnTrainConfig(lr=1e-3)
    ckpt = tmp_path / "vae.pt"
    cancel = __import__("threading").Event()
    seen = []

    def on_event(ev):
        seen.append(ev)
        if len([e for e in seen if type(e).__name__ == "Progress"]) == 10:
            cancel.set()

    with pytest.raises(Cancelled):
        drive(train_drgn_job(data, cfg, train, Schedule(steps=40, validate_every=20, metrics_every=5),
                             checkpoint=ckpt), on_event, cancel)
    assert ckpt.is_file()  # cancel kept a checkpoint
    res = drive(train_drgn_job(data, cfg, train, Schedule(steps=40, validate_every=20, metrics_every=5), checkpoint=ckpt))
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert res.step == 40 and losses[-1] < losses[0]
    m = open_manifold(ckpt)
    assert m.latent_dim == 2 and m.decode(np.zeros((3, 2))).shape == (3, 64, 64, 64)


def test_bad_training_inputs():
    from cryoforge.drgn.train import DrgnTrainer
    from cryoforge.manifold import ManifoldError

    with pytest.raises(ManifoldError, match="square images"):
        ParticleImages(np.zeros((3, 8, 10), np.float32))
    with pytest.raises(ManifoldError, match="rotations"):
        ParticleImages(np.zeros((3, 8, 8), np.float32), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="needs a rotation per image"):
        DrgnTrainer(ParticleImages(np.random.default_rng(0).random((3, 8, 8), np.float32)))
