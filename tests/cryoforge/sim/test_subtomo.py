"""Tests of :mod:`cryoforge.sim.subtomo`."""

import numpy as np
import pytest
import torch

from cryoforge.geometry import transform_volumes
from cryoforge.jobs import drive
from cryoforge.sim.density import model_to_density
from cryoforge.sim.phantoms import phantom_model
from cryoforge.sim.subtomo import read_pairs, simulate_pairs_job
from cryoforge.sim.tomo import (
    TomoParams,
)
from tests.helpers import correlation


def test_pair_dataset_ground_truth_and_files(proteasome, tmp_path):
    maps = np.stack([proteasome.numpy(), model_to_density(phantom_model("ribosome", 0), 32, 12.0).numpy()])
    params = TomoParams(snr=None, apply_ctf=False)
    ds = drive(simulate_pairs_job(maps, ["proteasome", "ribosome"], 6, params, wedge_a=0, wedge_b=0, max_shift=5,
                                  seed=3, out_dir=tmp_path / "pairs"))
    assert ds.s_a.shape == (6, 32, 32, 32) and list(ds.truth["structure"][:2]) == ["proteasome", "ribosome"]
    assert np.all(np.linalg.norm(ds.shifts(), axis=1) <= 5 + 1e-5)
    moved = transform_volumes(torch.from_numpy(ds.s_a), torch.from_numpy(ds.rotations()), torch.from_numpy(ds.shifts()))
    assert min(correlation(m, b) for m, b in zip(moved, ds.s_b, strict=True)) > 0.9  # s_b = T(R, t) s_a
    back = read_pairs(tmp_path / "pairs")
    np.testing.assert_allclose(back.s_b, ds.s_b, atol=1e-6)
    np.testing.assert_allclose(back.rotations(), ds.rotations(), atol=1e-5)
    assert (tmp_path / "pairs" / "wedge_b.mrc").is_file() and back.info["snr_definition"].startswith("subtomogram")
    again = drive(simulate_pairs_job(maps, None, 6, params, 0, 0, 5, seed=3))
    assert np.array_equal(again.s_a, ds.s_a)  # same seed, same data


def test_int8_storage_keeps_the_data(proteasome, tmp_path):
    ds = drive(simulate_pairs_job(proteasome[None].numpy(), None, 4, TomoParams(snr=0.1), seed=0,
                                  out_dir=tmp_path / "q", storage="int8"))
    back = read_pairs(tmp_path / "q")
    assert correlation(back.s_a, ds.s_a) > 0.999 and correlation(back.s_b, ds.s_b) > 0.999


def test_bad_pair_parameters(proteasome):
    from cryoforge.jobs import JobError

    with pytest.raises(JobError, match="wedge_b"):
        drive(simulate_pairs_job(proteasome[None].numpy(), None, 2, wedge_b=100))
    with pytest.raises(JobError, match="n_pairs"):
        drive(simulate_pairs_job(proteasome[None].numpy(), None, 0))


def test_a_simulated_tomogram_folder_is_named_and_the_right_call_suggested(tmp_path):
    from cryoforge.sim.subtomo import read_pairs

    (tmp_path / "tomogram.mrc").write_bytes(b"")
    (tmp_path / "particles.star").write_text("")
    with pytest.raises(FileNotFoundError, match=r"a tomogram and its particles .*--particles .*particles\.star"):
        read_pairs(tmp_path)
