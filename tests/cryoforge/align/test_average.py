"""Tests of :mod:`cryoforge.align.average`."""

import numpy as np
import torch

from cryoforge.align.average import average_job
from cryoforge.align.config import AverageConfig
from cryoforge.geometry import transform_volumes
from cryoforge.jobs import JobError, drive
from cryoforge.metrics import fsc
from cryoforge.samples import sample_path
from cryoforge.search import classical_align
from cryoforge.sim.params import TomoParams
from cryoforge.sim.tomo import centred_wedge


def test_reference_free_average_beats_the_plain_average():
    from cryoforge.align.data import simulate_pairs
    from cryoforge.io.mrc import read_mrc

    data, _ = read_mrc(sample_path("gumnet/maps.mrc"))
    truth = np.asarray(data[0], np.float32)
    ds = simulate_pairs(truth[None], 24, TomoParams(snr=2.0, apply_ctf=False), seed=3)
    mask = centred_wedge(32, -60, 60)
    events = []
    res = drive(average_job(ds.s_b, mask, 12.0, AverageConfig(iterations=2, global_rotations=500)), events.append)
    plain = ds.s_b.mean(0)
    assert len(res.report["iterations"]) == 2
    assert res.resolution < 80 and res.to_json()["report"]["n"] == res.report["n"]
    # the average comes in an arbitrary frame: put it onto the truth before comparing
    r, t, score = classical_align(torch.from_numpy(res.average), torch.from_numpy(truth))
    assert score[0] > 0.6
    f_plain = fsc(torch.from_numpy(plain), torch.from_numpy(truth)).fsc[1:6].mean()
    placed = transform_volumes(torch.from_numpy(res.average), r[0], t[0])
    f_avg = fsc(placed, torch.from_numpy(truth)).fsc[1:6].mean()
    assert f_avg > f_plain + 0.2


def test_a_stack_on_disk_is_averaged_a_chunk_at_a_time_as_in_memory(tmp_path, monkeypatch):
    """Pair-dataset subtomograms stay memory-mapped: each search and each weighted sum reads its chunk; the maps and
    poses equal those of the stack held in memory (to float rounding)."""
    import cryoforge.align.average as average
    from cryoforge.align.data import simulate_pairs
    from cryoforge.io.mrc import StoredStack, read_mrc
    from cryoforge.sim.subtomo import read_pairs, write_pairs

    data, _ = read_mrc(sample_path("gumnet/maps.mrc"))
    ds = simulate_pairs(np.asarray(data[:1], np.float32), 10, TomoParams(snr=2.0, apply_ctf=False), seed=4)
    write_pairs(ds, tmp_path / "pairs")
    stored = read_pairs(tmp_path / "pairs", mmap=True)
    assert isinstance(stored.s_b, StoredStack)
    cfg = AverageConfig(iterations=2, global_iterations=1, own_global_iterations=0, global_rotations=100)
    mask = centred_wedge(32, -60, 60)
    monkeypatch.setattr(average, "SEARCH_CHUNK", 2)  # 5 per half: chunks of 2, 2 and 1
    lazy = drive(average_job(stored.s_b, mask, 12.0, cfg))
    held = drive(average_job(np.asarray(stored.s_b), mask, 12.0, cfg))
    # with several threads a search's sums may split differently in a smaller batch: equal to float rounding
    np.testing.assert_allclose(lazy.average, held.average, rtol=0, atol=1e-5 * np.abs(held.average).max())
    np.testing.assert_allclose(lazy.rotations, held.rotations, atol=1e-4)


class _Oracle(torch.nn.Module):
    """A stand-in for Gum-Net that answers given 6-D poses (what a perfect network would output)."""

    def __init__(self, rot, shifts):
        from cryoforge.align.config import GumNetConfig

        super().__init__()
        self.cfg = GumNetConfig.preset("tiny", rotation="6d")
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.params = torch.cat([rot[..., 0], rot[..., 1], (shifts / 16 + 1) / 2], -1)  # shifts after the sigmoid

    def check_input(self, s_a, s_b):
        pass

    def forward(self, s_a, s_b):
        return self.params[:len(s_a)]


def test_gumnet_refinement_composes_the_network_step_and_keeps_only_improvements(maps):
    """Local refinement by Gum-Net: the network's T(ΔR, Δt) relative to the reference brought to the last pose composes
    to the true pose when the network is right; a wrong step (worse correlation) leaves the pose as it was."""
    from cryoforge.align.average import forward_warp, gumnet_refine
    from cryoforge.conventions import random_rotations, rotation_about_axis, rotation_angle_deg

    ref = maps[0]
    n = 6
    true_r, true_t = random_rotations(n, 11), torch.tensor([[1.0, -2.0, 0.5]]).repeat(n, 1)
    subtomos = forward_warp(ref, true_r, true_t)
    mask = centred_wedge(32, -60, 60)[None]
    start_r = rotation_about_axis(np.random.default_rng(2).normal(size=(n, 3)), np.full(n, 12.0)).float() @ true_r
    start_t = true_t + 0.7
    d_r = true_r @ start_r.transpose(-1, -2)
    d_t = true_t - (d_r @ start_t[..., None])[..., 0]
    r, t = gumnet_refine(_Oracle(d_r, d_t), ref, subtomos, mask, start_r, start_t)
    assert float(rotation_angle_deg(r, true_r).max()) < 0.05 and float((t - true_t).abs().max()) < 1e-3
    # a network that turns every pose 40° away from the truth: no pose moves
    wrong = rotation_about_axis(np.random.default_rng(3).normal(size=(n, 3)), np.full(n, 40.0)).float()
    r, t = gumnet_refine(_Oracle(wrong, torch.zeros(n, 3)), ref, subtomos, mask, true_r, true_t)
    assert torch.equal(r, true_r) and torch.equal(t, true_t)


def test_averaging_with_gumnet_for_the_local_iterations(tmp_path):
    """AverageConfig(local_method="gumnet"): the global iterations search, the local ones run the network; the report
    says which; without a model the job refuses to start."""
    import pytest

    from cryoforge.align.config import GumNetConfig
    from cryoforge.align.data import simulate_pairs
    from cryoforge.align.gumnet import GumNet
    from cryoforge.io.mrc import read_mrc

    data, _ = read_mrc(sample_path("gumnet/maps.mrc"))
    ds = simulate_pairs(np.asarray(data[:1], np.float32), 16, TomoParams(snr=2.0, apply_ctf=False), seed=5)
    cfg = AverageConfig(iterations=2, global_iterations=1, own_global_iterations=0, global_rotations=100,
                        local_method="gumnet")
    mask = centred_wedge(32, -60, 60)
    with pytest.raises(JobError, match="needs a model"):
        drive(average_job(ds.s_b, mask, 12.0, cfg))
    model = GumNet(GumNetConfig.preset("tiny", rotation="6d")).eval()  # untrained: its steps rarely help
    res = drive(average_job(ds.s_b, mask, 12.0, cfg, model=model))
    assert [(row["search"], row["aligner"]) for row in res.report["iterations"]] == [("global", "classical"),
                                                                                     ("local", "gumnet")]
    assert np.isfinite(res.average).all() and res.resolution < 200
