"""Tests of :mod:`cryoforge.bench_core`."""

import numpy as np
import torch

from cryoforge.bench_core import CoreBench, bench_core, nearest_shell_fsc
from cryoforge.jobs import drive


def test_reference_fsc_of_identical_maps_is_one():
    a = torch.randn(16, 16, 16)
    np.testing.assert_allclose(nearest_shell_fsc(a, a), 1.0, atol=1e-6)


def test_bench_core_report():
    report = drive(bench_core(CoreBench(sizes=(16,), repeats=1)))
    (row,) = report["fsc"]
    assert row["n"] == 16 and row["torchfsc_s"] > 0 and row["nearest_shell_s"] > 0
    assert 0 <= row["max_abs_diff_shells_1_to_nyquist"] < 0.5
    assert report["ctf"]["ctfs_per_s"] > 0
