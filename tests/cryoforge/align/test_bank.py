"""Tests of :mod:`cryoforge.align.bank` (pre-simulated training pairs)."""

import numpy as np
import pytest
import torch

from cryoforge.align.bank import PairBank, write_bank_job
from cryoforge.align.config import GumNetConfig, TrainConfig
from cryoforge.align.data import training_batch
from cryoforge.align.train import train_gumnet_job
from cryoforge.jobs import drive
from cryoforge.jobs.trainer import Schedule


def test_a_bank_holds_the_simulators_pairs_and_serves_batches_within_the_range(maps, tmp_path, monkeypatch):
    import cryoforge.align.bank as bank

    monkeypatch.setattr(bank, "CHUNK", 8)
    params = TrainConfig().tomo
    drive(write_bank_job(tmp_path / "bank", maps.numpy()[:2], 20, params, [100.0, 0.1], seed=3, max_angle=60.0))
    b = PairBank.open(tmp_path / "bank")
    assert len(b) == 20 and b.info["max_angle_deg"] == 60.0
    # chunk k is training_batch(seed, step k) at the k-th SNR, stored as float16
    s_a, s_b, rel, sh = training_batch(maps.numpy()[:2], 8, params, [0.1], 3, 1, 30.0, 7.0, 60.0)
    np.testing.assert_allclose(b.arrays["s_b"][8:16], s_b.numpy(), rtol=2e-3, atol=2e-3 * float(s_b.abs().max()))
    np.testing.assert_allclose(b.arrays["rotations"][8:16], rel.numpy())
    assert list(b.arrays["snr"]) == [100.0] * 8 + [0.1] * 8 + [100.0] * 4
    assert float(b.arrays["angle_deg"].max()) <= 60.0 + 1e-3
    a, _, r, _ = b.batch(6, 0, step=1, max_angle=30.0, snrs=[100.0, 0.1])  # step 1: the second SNR
    angles = torch.rad2deg(torch.arccos(((torch.diagonal(r, dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert a.shape == (6, 32, 32, 32) and a.dtype == torch.float32 and float(angles.max()) <= 30.0 + 1e-2
    with pytest.raises(ValueError, match="no pair in the bank at SNR 0.03"):
        b.batch(2, 0, 0, 180.0, [0.03])
    # training reads it
    res = drive(train_gumnet_job(maps.numpy()[:2], GumNetConfig.preset("tiny"),
                                 TrainConfig(batch=2, val_pairs=2, snrs=[100.0], bank=str(tmp_path / "bank")),
                                 Schedule(steps=2, validate_every=2, metrics_every=1, checkpoint_every=2),
                                 tmp_path / "g.pt"))
    assert res.step == 2 and np.isfinite([h["loss"] for h in res.history if "loss" in h]).all()
    with pytest.raises(FileNotFoundError, match="not a pair bank"):
        PairBank.open(tmp_path)
