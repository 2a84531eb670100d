"""Tests of :mod:`cryoforge.manifold.cli`."""

import json
import pickle

import imageio.v3 as iio
import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.conventions import random_rotations
from tests.helpers import CRYODRGN, METADATA, R31, adk_map, needs_hand_images, projections


def test_cli_trains_with_pose_search_and_asks_for_poses_otherwise(tmp_path):
    from cryoforge.cli import main
    from cryoforge.io.checkpoint import load_checkpoint
    from cryoforge.io.mrc import write_mrc

    stack = tmp_path / "p.mrcs"
    write_mrc(stack, projections(adk_map(16), random_rotations(24, seed=4)), voxel_size=6.0)
    args = ["drgn", "train", str(stack), "--checkpoint", str(tmp_path / "c.pt"), "--steps", "4", "--dim", "16",
            "--layers", "1", "--batch", "8", "--no-ctf", "--validate-every", "0"]
    assert main(args) != 0  # neither poses nor --pose-search
    assert main(args + ["--pose-search", "--pretrain", "8", "--t-extent", "0"]) == 0
    payload = load_checkpoint(tmp_path / "c.pt")
    assert payload["config"]["pose_search"]["pretrain_images"] == 8
    assert (payload["state_dicts"]["poses"]["searched"] >= 0).any()


@needs_hand_images
def test_drgn_train_cli_needs_a_ctf_or_no_ctf(tmp_path, capsys):
    from cryoforge.cli import main

    args = ["drgn", "train", str(CRYODRGN / "hand.mrcs"), "--poses", str(CRYODRGN / "hand_rot.pkl"), "--checkpoint",
            str(tmp_path / "h.pt"), "--steps", "4", "--dim", "16", "--layers", "1", "--validate-every", "4"]
    assert main(args) == 2 and "--no-ctf" in capsys.readouterr().err
    assert main(args + ["--no-ctf"]) == 0 and (tmp_path / "h.pt").is_file()


@needs_hand_images
def test_train_from_a_relion_star_with_ctf(tmp_path):
    from cryoforge.cli import main
    from cryoforge.io.checkpoint import load_checkpoint

    ckpt = tmp_path / "r.pt"
    assert main(["drgn", "train", str(CRYODRGN / "relion31.mrcs"), "--poses", str(CRYODRGN / "relion31.star"),
                 "--checkpoint", str(ckpt), "--steps", "3", "--dim", "16", "--layers", "1", "--batch", "4",
                 "--validate-every", "0"]) == 0  # 256² images: a validation volume would be 256³
    cfg = load_checkpoint(ckpt)["config"]
    assert cfg["voxel_size"] == pytest.approx(2.806) and cfg["n_images"] == 5


def test_movie_cli_and_errors(tmp_path, capsys):
    out = tmp_path / "m.gif"
    assert main(["movie", "analytic", "--from=-2,0", "--to", "2,1", "--via", "0,1.5", "--frames", "6", "--out",
                 str(out), "--renderer", "slices", "--path", "spherical"]) == 0
    assert iio.imread(out).shape[0] == 6 and (tmp_path / "m.gif.z.txt").is_file()
    assert main(["movie", "analytic", "--from", "0", "--to", "1", "--frames", "0", "--out", str(out)]) == 2
    assert "--frames: must be > 0 frames" in capsys.readouterr().err
    assert main(["movie", "analytic", "--from", "0,1,2", "--to", "1", "--out", str(out)]) == 2
    assert "has 3 coordinates" in capsys.readouterr().err
    assert main(["movie", "wgan", "--from", "proteasome", "--to", "nonexistent", "--out", str(out)]) == 2


def test_drgn_eval_and_analyze_cli(tmp_path):
    from cryoforge.io.mrc import read_mrc
    from tests.helpers import random_drgn_run as _run

    _run(tmp_path, D=17, zdim=2)
    z = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    with open(tmp_path / "z.3.pkl", "wb") as fh:
        pickle.dump(z, fh)
    assert main(["drgn", "eval", str(tmp_path), "--zval", "0.5", "-1", "-o", str(tmp_path / "v.mrc"),
                 "--voxel-size", "3.2"]) == 0
    vol, info = read_mrc(tmp_path / "v.mrc")
    assert vol.shape == (16, 16, 16) and info.voxel_size[0] == pytest.approx(3.2)
    out = tmp_path / "analyze"
    assert main(["drgn", "analyze", str(tmp_path), "-o", str(out), "--ksample", "3", "--pc", "2",
                 "--n-per-pc", "4"]) == 0
    rep = json.loads((out / "analysis.json").read_text())
    assert len(rep["kmeans_centre_indices"]) == 3 and sum(rep["cluster_sizes"]) == 60
    assert len(list((out / "pc2").glob("vol_*.mrc"))) == 4 and len(list((out / "kmeans3").glob("*.mrc"))) == 3


def test_a_misspelled_label_lists_the_labels(capsys, tmp_path):
    assert main(["movie", "wgan", "--from", "proteasom", "--to", "ribosome", "--out", str(tmp_path / "m.gif")]) == 2
    err = capsys.readouterr().err
    assert "'proteasom' is not a data label of this model; did you mean 'proteasome'?" in err and "4v5d" in err


# 6. z files
def test_z_file_of_the_wrong_width_is_an_error(tmp_path, capsys):
    np.savetxt(tmp_path / "z4.txt", np.zeros((2, 4)))
    np.savetxt(tmp_path / "z3.txt", np.zeros((3, 3)))
    for z in ("z4.txt", "z3.txt"):
        assert main(["drgn", "eval", "analytic:8", "--zfile", str(tmp_path / z), "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "numbers per line, but the model's latent space has 8 dimensions" in err
    assert not (tmp_path / "o").exists()


def test_drgn_eval_says_what_it_decoded(shared_dir, tmp_path, capsys):
    run = shared_dir / "cryodrgn"
    assert main(["drgn", "eval", str(run / "het_weights.pkl"), "-c", str(run / "het_config.yaml"),
                 "-o", str(tmp_path / "v.mrc")]) == 0
    out = capsys.readouterr().out
    assert "decoding the latent origin z = (0, 0, 0, 0, 0, 0, 0, 0)" in out
    assert "voxel size: 1 Å written to the header (the run does not record one" in out
    np.savetxt(tmp_path / "z.txt", np.zeros((2, 8)))
    assert main(["drgn", "eval", str(run / "het_weights.pkl"), "-c", str(run / "het_config.yaml"), "--zfile",
                 str(tmp_path / "z.txt"), "-o", str(tmp_path / "out"), "--voxel-size", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vol_001.mrc", "vol_002.mrc"]  # as eval_vol


def test_training_with_a_ctf_but_no_pixel_size_is_refused(tmp_path, capsys):
    text = R31.read_text().replace("_rlnImagePixelSize #6", "_rlnSomethingElse #6")
    (tmp_path / "nopx.star").write_text(text)
    args = ["drgn", "train", str(METADATA / "relion31_optics6.mrcs"), "--poses", str(tmp_path / "nopx.star"),
            "--checkpoint", str(tmp_path / "m.pt"), "--steps", "1", "--dim", "8", "--layers", "1", "--batch", "2",
            "--validate-every", "0"]
    assert main(args) == 2
    assert "no pixel size" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()
    assert main(args + ["--apix", "1.24"]) == 0
