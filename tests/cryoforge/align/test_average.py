"""Tests of :mod:`cryoforge.align.average`."""

import numpy as np
import torch

from cryoforge.align.average import average_job
from cryoforge.align.config import AverageConfig
from cryoforge.geometry import transform_volumes
from cryoforge.jobs import drive
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
