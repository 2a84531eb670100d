"""Tests of :mod:`cryoforge.sim.sources`."""

import numpy as np


def test_adk_continuous_path(shared_dir):
    from cryoforge.sim.sources import MapSpec, continuous_ensemble

    s = shared_dir / "structures"
    ens = continuous_ensemble(str(s / "adk_closed.pdb.gz"), str(s / "adk_open.pdb.gz"), 5, MapSpec(48, 2.0))
    c = [np.corrcoef(ens.maps[0].ravel(), m.ravel())[0, 1] for m in ens.maps]
    assert all(a > b for a, b in zip(c, c[1:], strict=False))  # the maps move away from the closed state step by step
