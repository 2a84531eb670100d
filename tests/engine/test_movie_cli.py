"""Movies (fallback renderers, no GL) and the movie / drgn CLI."""

import json
import pickle

import imageio.v3 as iio
import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.jobs import JobError, drive
from cryoforge.manifold import make_path
from cryoforge.manifold.analytic import AnalyticManifold
from cryoforge.manifold.movie import movie_job


@pytest.mark.parametrize("suffix, renderer", [(".gif", "slices"), (".mp4", "projection")])
def test_fallback_movie_has_n_frames_and_the_z_path(tmp_path, suffix, renderer):
    m = AnalyticManifold(2, box=16)
    path = make_path([[-2, 0], [2, 0]], 7)
    res = drive(movie_job(m, path, tmp_path / f"walk{suffix}", fps=5, renderer=renderer))
    frames = iio.imread(tmp_path / f"walk{suffix}")
    assert res["frames"] == 7 and frames.shape[0] == 7 and frames.shape[-1] == 3
    assert not np.array_equal(frames[0], frames[-1])  # the hinge moved
    np.testing.assert_allclose(np.loadtxt(res["z_path"]), path, atol=1e-5)
    assert json.loads((tmp_path / f"walk{suffix}.json").read_text())["renderer"] == renderer


def test_movie_bad_output_suffix(tmp_path):
    with pytest.raises(JobError, match=".mp4 or .gif"):
        drive(movie_job(AnalyticManifold(2, box=16), np.zeros((3, 2)), tmp_path / "a.avi", renderer="slices"))


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
    from test_drgn import _run

    from cryoforge.io.mrc import read_mrc

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
