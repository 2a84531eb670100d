"""Fixtures shared by the engine's test modules (session-scoped: made once per run)."""

import numpy as np
import pytest
import torch

from cryoforge.hyptest.config import GANTrainConfig, RegressorTrainConfig
from cryoforge.hyptest.train import train_regressor_job, train_wgan_job
from cryoforge.io.mrc import read_mrc
from cryoforge.jobs.trainer import Schedule
from cryoforge.samples import sample_path
from cryoforge.sim.density import model_to_density
from cryoforge.sim.phantoms import phantom_model
from tests.helpers import TINY


@pytest.fixture(scope="session")
def maps():
    """The shipped Gum-Net training maps, ``(K, 32, 32, 32)``."""
    data, _ = read_mrc(sample_path("gumnet/maps.mrc"))
    return torch.from_numpy(np.asarray(data, np.float32))


@pytest.fixture(scope="session")
def proteasome():
    """The proteasome phantom at 32³, 12 Å."""
    return model_to_density(phantom_model("proteasome", 0), 32, 12.0, resolution=24.0)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, blob_clusters):
    """A tiny 3D-WGAN and its regressor, three steps each: ``(folder, maps, GAN events, regressor events)``."""
    d = tmp_path_factory.mktemp("gan")
    maps = blob_clusters(n=32, k=3, blobs=4, spread=4.0, sigma=(1.5, 3.0))
    train = GANTrainConfig(batch=4, n_critic=2, rotations=3)
    events = list(train_wgan_job(maps, TINY, train, Schedule(steps=3, validate_every=3, metrics_every=1),
                                 checkpoint=d / "gan.pt"))
    reg_events = list(train_regressor_job(d / "gan.pt", maps, RegressorTrainConfig(batch=4, rotations=3),
                                          Schedule(steps=3, validate_every=3, metrics_every=1),
                                          checkpoint=d / "reg.pt"))
    return d, maps, events, reg_events
