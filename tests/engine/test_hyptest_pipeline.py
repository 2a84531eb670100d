"""The hypothesis-test pipeline end to end on a tiny GAN: training, resume, regressor, test, table, CLI."""

import numpy as np
import pandas as pd
import pytest
import starfile
import torch

from cryoforge.hyptest.montecarlo import HypothesisTester, HypTestConfig, p_value, write_table
from cryoforge.hyptest.train import (
    GANTrainConfig,
    RegressorTrainConfig,
    load_generator,
    load_regressor,
    train_regressor_job,
    train_wgan_job,
)
from cryoforge.hyptest.wgan import WGANConfig
from cryoforge.io.checkpoint import CheckpointError
from cryoforge.jobs import Metrics, Preview, Result, drive

TINY = WGANConfig(box=32, width=2, mbd_kernels=4, mbd_dim=2, zdim=8)
FAST_SCORE = {"coarse_box": 12, "n_rotations": 200, "candidates": 2, "neighbours": 2, "fine_box": 16}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, blob_clusters):
    d = tmp_path_factory.mktemp("gan")
    maps = blob_clusters(n=32, k=3, blobs=4, spread=4.0, sigma=(1.5, 3.0))
    train = GANTrainConfig(batch=4, n_critic=2, rotations=3)
    events = list(train_wgan_job(maps, TINY, train, steps=3, checkpoint=d / "gan.pt", validate_every=3,
                                 metrics_every=1))
    reg_events = list(train_regressor_job(d / "gan.pt", maps, RegressorTrainConfig(batch=4, rotations=3), steps=3,
                                          checkpoint=d / "reg.pt", validate_every=3, metrics_every=1))
    return d, maps, events, reg_events


def test_gan_training_events_checkpoint_and_resume(trained):
    d, maps, events, _ = trained
    metrics = [e.values for e in events if isinstance(e, Metrics)]
    assert {"wasserstein", "gp", "loss_g"} <= set(metrics[0])
    assert any("val_spectrum_err" in m for m in metrics)
    assert any(isinstance(e, Preview) and e.kind == "stack" for e in events)
    assert events[-1].value["step"] == 3
    gen, payload = load_generator(d / "gan.pt")
    assert gen.cfg == TINY and payload["extra"]["step"] == 3
    more = list(train_wgan_job(maps, TINY, GANTrainConfig(batch=4, n_critic=2, rotations=3), steps=4,
                               checkpoint=d / "gan.pt", validate_every=0))
    assert "resumed" in more[0].message and more[-1].value["step"] == 4
    with pytest.raises(CheckpointError, match="trained with"):  # another architecture, same file
        list(train_wgan_job(maps, WGANConfig(box=32, width=4, zdim=8), GANTrainConfig(batch=4, n_critic=1, rotations=2),
                            steps=5, checkpoint=d / "gan.pt"))


def test_regressor_training_and_loading(trained):
    d, _, _, reg_events = trained
    val = [e.values for e in reg_events if isinstance(e, Metrics) and "val_sse_data" in e.values]
    assert val and np.isfinite(val[-1]["val_sse_data"])
    gen, reg, payload = load_regressor(d / "reg.pt")
    assert reg(torch.zeros(2, 32, 32, 32)).shape == (2, TINY.zdim)
    with pytest.raises(CheckpointError):
        load_regressor(d / "gan.pt")  # a GAN checkpoint has no regressor


def test_hypothesis_test_result_is_consistent(trained):
    d, maps, _, _ = trained
    cfg = HypTestConfig(n_pseudo=100, kde_rotations=30, score=FAST_SCORE)
    tester = HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a", "b", "c"], cfg)
    p = maps[1] + np.random.default_rng(0).normal(size=maps[1].shape).astype(np.float32) * 0.05
    events = list(tester.test_job(p, None, truth=1))
    res = events[-1].value
    assert isinstance(events[-1], Result)
    assert res["best_name"] == "b" and res["cond1"]
    assert res["B"] == 100 + 2 and res["n_pseudo"] == 100
    null = np.concatenate([res["pseudo_scores"], np.delete(res["known_scores"], res["best"])])
    assert res["p_hat"] == p_value(res["score"], null) == np.mean(null >= res["score"])
    assert res["success"] == (res["cond1"] and res["p_hat"] <= 0.01)
    live = [e for e in events if isinstance(e, Preview) and e.name == "pseudo scores"]
    assert live and live[-1].array.shape == (2, 100)
    assert tester.pseudo_volume(1, 0).shape == (32, 32, 32)


def test_dataset_table_with_q_values(trained, tmp_path):
    d, maps, _, _ = trained
    cfg = HypTestConfig(n_pseudo=100, kde_rotations=30, score=FAST_SCORE)
    tester = HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a", "b", "c"], cfg)
    table = drive(tester.dataset_job(maps[[0, 2]], None, truths=[0, 2]))
    rows = table["rows"]
    assert len(rows) == 2 and all(r["q"] >= r["p_hat"] for r in rows)
    csv = pd.read_csv(write_table(table, tmp_path / "t.csv"))
    assert list(csv["truth"]) == ["a", "c"]
    star = starfile.read(write_table(table, tmp_path / "t.star"))
    assert len(star) == 2 and "p_hat" in star.columns
    with pytest.raises(ValueError, match=".csv or .star"):
        write_table(table, tmp_path / "t.txt")


def test_bad_inputs(trained):
    d, maps, _, _ = trained
    with pytest.raises(ValueError, match="cannot reach"):
        HypothesisTester.from_checkpoint(d / "reg.pt", maps, list("abc"), HypTestConfig(n_pseudo=50))
    with pytest.raises(ValueError, match="box"):
        HypothesisTester.from_checkpoint(d / "reg.pt", np.zeros((3, 64, 64, 64)), list("abc"))
    with pytest.raises(ValueError, match="names"):
        HypothesisTester.from_checkpoint(d / "reg.pt", maps, ["a"])


def test_cli_templates_train_export_and_test(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io.mrc import write_mrc

    tdir = tmp_path / "templates"
    assert main(["hyptest", "templates", "phantom:assembly@1", "phantom:assembly@2", "phantom:ribosome",
                 "--out", str(tdir)]) == 0
    gan, reg, slim = tmp_path / "gan.pt", tmp_path / "reg.pt", tmp_path / "slim.pt"
    common = ["--templates", str(tdir), "--steps", "2", "--batch", "4", "--rotations", "2", "--validate-every", "2"]
    assert main(["hyptest", "train-gan", *common, "--checkpoint", str(gan), "--width", "2", "--zdim", "8",
                 "--n-critic", "1"]) == 0
    assert main(["hyptest", "train-regressor", *common, "--checkpoint", str(reg), "--gan", str(gan)]) == 0
    assert main(["hyptest", "export", str(reg), str(slim)]) == 0
    assert slim.stat().st_size < reg.stat().st_size
    _, _, payload = load_regressor(slim)
    assert payload["extra"]["weights_dtype"] == "float16" and "train-regressor" in payload["extra"]["command"]
    from cryoforge.hyptest.templates import read_template_set

    maps, names, vs = read_template_set(tdir)
    assert names == ["assembly@1", "assembly@2", "ribosome"] and vs == 12.0
    write_mrc(tmp_path / "p.mrc", maps[:2], vs, stack=True)
    capsys.readouterr()
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--rotations", "300", "--out", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "#0" in out and "#1" in out and "p̂ " in out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--rotations", "300", "--defocus", "3", "--limit", "1"]) == 0  # CTF-aware
    assert "#0" in capsys.readouterr().out
    from cryoforge.sim.sources import MapSpec, load_map

    write_mrc(tmp_path / "fine.mrc", load_map("phantom:ribosome", MapSpec(40, 9.6)), 9.6)  # acquired finer: binned
    assert main(["hyptest", "test", str(tmp_path / "fine.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--rotations", "300", "--defocus", "3"]) == 0
    out = capsys.readouterr().out
    assert "binning the 40³ subtomograms at 9.6 Å" in out and "best ribosome" in out
    write_mrc(tmp_path / "wide.mrc", load_map("phantom:ribosome", MapSpec(48, 9.6)), 9.6)
    assert main(["hyptest", "test", str(tmp_path / "wide.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100"]) == 2  # a box of another length: a clear error
    assert "extract subtomograms of 40³ voxels" in capsys.readouterr().err
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--defocus", "3", "4", "5"]) == 2  # one defocus per subtomogram, or one
    assert "one per subtomogram" in capsys.readouterr().err
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "20"]) == 2  # B too small for α = 0.01: a clear error, not a traceback
    assert "cannot reach" in capsys.readouterr().err


def test_bench_acquires_finer_bins_to_the_templates_and_reports_both_samplings(trained, tmp_path):
    from cryoforge.cli import main
    from cryoforge.hyptest.bench import bench_hyptest

    d = trained[0]
    tdir = tmp_path / "templates"
    assert main(["hyptest", "templates", "phantom:ribosome", "phantom:assembly@4", "phantom:ring@2",
                 "--out", str(tdir)]) == 0
    report = drive(bench_hyptest(model=d / "reg.pt", templates=tdir, n_pseudo=100, n_empty=1, calibration_cases=3,
                                 calibration_pseudo=10, calibration_rotations=100))
    assert report["acquisition_voxel"] == 9.6 and report["template_voxel"] == 12.0
    # per-voxel SNR 0.03 at 9.6 Å, binned to 12 Å: (12/9.6)³ ≈ 1.95× for white noise, less for the tomographic ramp
    assert 1.4 < report["snr_at_template_sampling"] / report["snr"] < 2.1
    for part in ("known", "known_direct"):
        assert report[part]["cases"] == 3 and len(report[part]["rows"]) == 3
    assert report["false_positives"]["cases"] == 2 and report["calibration"]["cases"] == 3
    from cryoforge.jobs.runner import JobError

    with pytest.raises(JobError, match="acquiring at 9.6 Å .* missing .*gone.pdb"):
        drive(bench_hyptest(model=d / "reg.pt", templates=_with_missing_source(tdir, tmp_path), n_pseudo=100))


def _with_missing_source(tdir, tmp_path):
    import json
    import shutil

    other = tmp_path / "moved"
    shutil.copytree(tdir, other)
    meta = json.loads((other / "templates.json").read_text())
    meta["sources"][0] = str(tmp_path / "gone.pdb")
    (other / "templates.json").write_text(json.dumps(meta))
    return other
