"""Tests of :mod:`cryoforge.hyptest.train`."""

import numpy as np
import pytest
import torch

from cryoforge.hyptest.config import WGANConfig
from cryoforge.hyptest.train import (
    GANTrainConfig,
    load_generator,
    load_regressor,
    train_wgan_job,
)
from cryoforge.io.checkpoint import CheckpointError
from cryoforge.jobs import Metrics, Preview
from cryoforge.jobs.trainer import Schedule
from tests.helpers import TINY


def test_gan_training_events_checkpoint_and_resume(trained):
    d, maps, events, _ = trained
    metrics = [e.values for e in events if isinstance(e, Metrics)]
    assert {"wasserstein", "gp", "loss_g"} <= set(metrics[0])
    assert any("val_spectrum_err" in m for m in metrics)
    assert any(isinstance(e, Preview) and e.view == "stack" for e in events)
    assert events[-1].value.step == 3
    gen, payload = load_generator(d / "gan.pt")
    assert gen.cfg == TINY and payload["extra"]["step"] == 3
    more = list(train_wgan_job(maps, TINY, GANTrainConfig(batch=4, n_critic=2, rotations=3),
                               Schedule(steps=4, validate_every=0),
                               checkpoint=d / "gan.pt"))
    assert "resumed" in more[0].message and more[-1].value.step == 4
    with pytest.raises(CheckpointError, match="trained with"):  # another architecture, same file
        list(train_wgan_job(maps, WGANConfig(box=32, width=4, zdim=8), GANTrainConfig(batch=4, n_critic=1, rotations=2),
                            Schedule(steps=5),
                            checkpoint=d / "gan.pt"))


def test_regressor_training_and_loading(trained):
    d, _, _, reg_events = trained
    val = [e.values for e in reg_events if isinstance(e, Metrics) and "val_sse_data" in e.values]
    assert val and np.isfinite(val[-1]["val_sse_data"])
    gen, reg, payload = load_regressor(d / "reg.pt")
    assert reg(torch.zeros(2, 32, 32, 32)).shape == (2, TINY.zdim)
    with pytest.raises(CheckpointError):
        load_regressor(d / "gan.pt")  # a GAN checkpoint has no regressor
