"""Tests of :mod:`cryoforge.bench`."""

import pytest


def test_bench_settings_are_checked_in_one_line(capsys):
    from cryoforge.cli import main

    assert main(["bench", "align", "-o", "n_pair=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no setting n_pair" in err and "n_pairs=500" in err
    assert main(["bench", "core", "-o", "repeats=abc"]) == 2
    assert "bench core.repeats takes a whole number" in capsys.readouterr().err
    assert main(["bench", "align", "-o", "averaging=1"]) == 2
    assert "averaging takes true or false" in capsys.readouterr().err


def test_dotted_settings_change_one_setting_of_a_group():
    from cryoforge.bench import bench_settings
    from cryoforge.configs import ConfigError

    s = bench_settings("drgn", {"known.steps": 5, "pose_search.n_images": 64, "snr": 0.2})
    assert s.known.steps == 5 and s.known.n_images == 10_000 and s.known.lr == 3e-4  # the group's own defaults
    assert s.pose_search.n_images == 64 and s.pose_search.steps == 4000 and s.snr == 0.2
    with pytest.raises(ConfigError, match="bench drgn.known has no setting stepz"):
        bench_settings("drgn", {"known.stepz": 5})
