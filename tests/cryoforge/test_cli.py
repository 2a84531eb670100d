"""Tests of :mod:`cryoforge.cli`."""

import json
import subprocess
import sys

import numpy as np

from cryoforge import cli
from cryoforge.cli import main
from cryoforge.io import write_mrc


def test_cli_info_fsc_sample(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path), "--size", "32", "--snr", "2"]) == 0
    assert cli.main(["info", str(tmp_path / "phantom.mrc")]) == 0
    out = capsys.readouterr().out
    assert "(32, 32, 32)" in out and "x 2 Å" in out
    js = tmp_path / "fsc.json"
    png = tmp_path / "fsc.png"
    assert cli.main(["fsc", str(tmp_path / "phantom_half1.mrc"), str(tmp_path / "phantom_half2.mrc"),
                     "--json", str(js), "--plot", str(png), "--mask-radius", "24"]) == 0
    out = capsys.readouterr().out
    rep = json.loads(js.read_text())
    assert f"resolution at FSC=0.143: {rep['resolution_0.143_A']:.2f} Å" in out
    assert 4.0 <= rep["resolution_0.143_A"] < 30
    assert png.stat().st_size > 10_000


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "fake.mrc").write_text("not an mrc\n" * 50)
    assert cli.main(["info", str(tmp_path / "fake.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cryoforge info: error: fake.mrc: not a readable MRC file") and "Traceback" not in err
    write_mrc(tmp_path / "a.mrc", np.zeros((8, 8, 10)), 1.0)
    assert cli.main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "a.mrc")]) == 2
    assert "cubic" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "cryoforge.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("info", "fsc", "sample", "view"):
        assert cmd in r.stdout


def test_info_calls_a_stack_of_volumes_a_volume_stack(tmp_path, capsys):
    from cryoforge.io.mrc import write_mrc

    write_mrc(tmp_path / "v.mrc", np.zeros((5, 8, 8, 8), np.float32), 2.0)
    assert main(["info", str(tmp_path / "v.mrc")]) == 0
    assert "volume stack (N, Z, Y, X)" in capsys.readouterr().out


def test_building_the_cli_imports_no_torch():
    """The configs the CLI takes its defaults from are plain dataclasses: ``cryoforge --help`` stays quick."""
    import subprocess
    import sys

    code = ("import sys\nfrom cryoforge.cli import build_parser\nbuild_parser()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'napari', 'qtpy'))\n"
            "assert not heavy, heavy[:5]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_defaults_are_the_configs_defaults():
    from cryoforge.align.config import AverageConfig, GumNetConfig, TrainConfig
    from cryoforge.cli import build_parser
    from cryoforge.drgn.config import DrgnConfig, DrgnTrainConfig, PoseSearchConfig
    from cryoforge.hyptest.config import GANTrainConfig, HypTestConfig, RegressorTrainConfig, WGANConfig
    from cryoforge.multicryogan.config import McganConfig, McganTrainConfig

    parser = build_parser()
    cases = [
        (["align", "train", "--checkpoint", "x"], GumNetConfig(), {"pooling": "pooling", "rotation": "rotation"}),
        (["align", "train", "--checkpoint", "x"], TrainConfig(),
         {"batch": "batch", "lr": "lr", "curriculum": "curriculum_steps", "loss": "loss", "snr": "snrs",
          "val_pairs": "val_pairs", "seed": "seed"}),
        (["align", "average", "d", "--out", "o"], AverageConfig(),
         {"iterations": "iterations", "global_iterations": "global_iterations", "lowpass": "lowpass",
          "own_global_iterations": "own_global_iterations", "common_lowpass": "common_lowpass"}),
        (["hyptest", "train-gan", "--checkpoint", "x"], WGANConfig(), {"width": "width", "zdim": "zdim"}),
        (["hyptest", "train-gan", "--checkpoint", "x"], GANTrainConfig(),
         {"batch": "batch", "lr": "lr", "rotations": "rotations", "n_critic": "n_critic", "seed": "seed"}),
        (["hyptest", "train-regressor", "--checkpoint", "x", "--gan", "g"], RegressorTrainConfig(),
         {"batch": "batch", "lr": "lr", "rotations": "rotations"}),
        (["hyptest", "test", "s"], HypTestConfig(), {"n_pseudo": "n_pseudo", "prior": "prior", "alpha": "alpha"}),
        (["drgn", "train", "p", "--checkpoint", "x"], DrgnConfig(),
         {"zdim": "zdim", "layers": "players", "dim": "pdim", "domain": "domain", "pe_type": "pe_type"}),
        (["drgn", "train", "p", "--checkpoint", "x"], DrgnTrainConfig(), {"batch": "batch", "lr": "lr", "seed": "seed"}),
        (["drgn", "train", "p", "--checkpoint", "x"], PoseSearchConfig(),
         {"pretrain": "pretrain_images", "ps_every": "every_epochs", "l_start": "l_start",
          "l_ramp_epochs": "ramp_epochs", "t_extent": "t_extent", "t_ngrid": "t_ngrid"}),
        (["mcgan", "train", "p", "--checkpoint", "x"], McganConfig(),
         {"prior": "prior", "zdim": "zdim", "gwidth": "gwidth", "cwidth": "cwidth", "mapping": "mapping"}),
        (["mcgan", "train", "p", "--checkpoint", "x"], McganTrainConfig(),
         {"batch": "batch", "poses": "poses", "n_critic": "n_critic", "lr": "lr", "max_shift": "max_shift",
          "seed": "seed"}),
    ]
    for argv, cfg, fields in cases:
        args = parser.parse_args(argv)
        for dest, name in fields.items():
            assert getattr(args, dest) == getattr(cfg, name), (argv[:2], dest)


def test_particles_command_reads_converts_and_places_by_the_tomogram(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io import write_mrc
    from cryoforge.io.tomo_particles import read_particle_list

    write_mrc(tmp_path / "tomo.mrc", np.zeros((16, 40, 30), np.float32), 8.0)  # (Z, Y, X) at 8 Å
    (tmp_path / "picks.txt").write_text("15 20 8\n0 0 0\n")
    assert main(["particles", str(tmp_path / "picks.txt"), "--tomogram", str(tmp_path / "tomo.mrc"),
                 "--out", str(tmp_path / "picks.star")]) == 0
    assert "2 particles in 1 tomogram(s) (picks)" in capsys.readouterr().out
    star = read_particle_list(tmp_path / "picks.star")
    np.testing.assert_allclose(star.positions, [[0, 0, 0], [-120, -160, -64]])  # the centre is size / 2 voxels
    assert star.voxel_size == 8.0
    assert main(["particles", str(tmp_path / "picks.star"), "--shape", "30", "40", "16",
                 "--out", str(tmp_path / "picks.tbl")]) == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "picks.tbl")[:, 23:26], [[15, 20, 8], [0, 0, 0]])
    assert main(["particles", str(tmp_path / "picks.txt"), "--out", str(tmp_path / "p.star")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give the voxel size (--voxel-size Å) and the tomogram's shape" in err
