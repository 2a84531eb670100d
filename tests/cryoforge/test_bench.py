"""Tests of :mod:`cryoforge.bench`."""



def test_bench_settings_are_checked_in_one_line(capsys):
    from cryoforge.cli import main

    assert main(["bench", "align", "-o", "n_pair=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no setting n_pair" in err and "n_pairs=500" in err
    assert main(["bench", "core", "-o", "repeats=abc"]) == 2
    assert "bench core.repeats takes a whole number" in capsys.readouterr().err
    assert main(["bench", "align", "-o", "averaging=1"]) == 2
    assert "averaging takes true or false" in capsys.readouterr().err
