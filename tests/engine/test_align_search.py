"""Classical alignment, the hybrid path, averaging, the shared trainer and Gum-Net checkpoints."""

import numpy as np
import pytest
import torch

from cryoforge.align.average import AverageConfig, average_job
from cryoforge.align.gumnet import GumNet, GumNetConfig
from cryoforge.align.pipeline import align_pairs_job
from cryoforge.align.train import ARCH_KEYS, TrainConfig, load_gumnet, train_gumnet_job
from cryoforge.conventions import random_rotations, rotation_angle_deg
from cryoforge.geometry import transform_volumes
from cryoforge.io.checkpoint import CheckpointError, save_checkpoint
from cryoforge.jobs import Cancelled, JobError, Log, Progress, drive
from cryoforge.metrics import fsc
from cryoforge.samples import sample_path
from cryoforge.search import classical_align
from cryoforge.sim.tomo import TomoParams, centred_wedge
from cryoforge.so3 import grid_spacing_deg, local_grid, so3_grid


@pytest.fixture(scope="module")
def maps():
    from cryoforge.io.mrc import read_mrc

    data, _ = read_mrc(sample_path("gumnet/maps.mrc"))
    return torch.from_numpy(np.asarray(data, np.float32))


def _wedged(vols, mask):
    """Apply a centred Fourier mask (noise-free missing wedge)."""
    from cryoforge.fourier import centred_fft, centred_ifft

    return centred_ifft(centred_fft(vols) * mask)


def test_so3_grid_covers_rotation_space():
    grid = so3_grid(1000)
    probe = random_rotations(200, 1)
    nearest = rotation_angle_deg(probe[:, None], grid[None]).min(1).values
    assert nearest.max() < 1.6 * grid_spacing_deg(1000)
    assert torch.allclose(local_grid(2.0, 1)[0], torch.eye(3)) and len(local_grid(2.0, 2)) == 125


def test_classical_recovers_a_known_transform_on_noise_free_data(maps):
    rot = random_rotations(2, 11)
    t = torch.tensor([[3.0, -2.0, 1.5], [-4.0, 0.5, 2.0]])
    s_a = maps[:2]
    mask_b = centred_wedge(32, -60, 60)
    s_b = _wedged(transform_volumes(s_a, rot, t), mask_b)
    r_hat, t_hat, score = classical_align(s_a, s_b, None, mask_b)
    assert rotation_angle_deg(r_hat, rot).max() < 1.5
    assert torch.linalg.norm(t_hat - t, dim=1).max() < 0.3
    assert score.min() > 0.9


def test_hybrid_refines_from_a_rough_start_and_pipeline_reports_errors(maps):
    rot = random_rotations(2, 12)
    t = torch.tensor([[1.0, 2.0, -1.0], [0.0, -3.0, 2.5]])
    mask_b = centred_wedge(32, -60, 60)
    s_b = _wedged(transform_volumes(maps[[0, 2]], rot, t), mask_b)
    rough = torch.linalg.matrix_exp(torch.tensor([[0, -0.15, 0.1], [0.15, 0, -0.1], [-0.1, 0.1, 0]])) @ rot
    r_hat, t_hat, _ = classical_align(maps[[0, 2]], s_b, None, mask_b, initial=rough)
    assert rotation_angle_deg(rough, rot).min() > 8 and rotation_angle_deg(r_hat, rot).max() < 1.5
    res = drive(align_pairs_job(maps[[0, 2]], s_b, None, mask_b, "classical", truth=(rot, t)))
    assert res["summary"]["rot_deg_mean"] < 1.5 and res["summary"]["trans_vox_mean"] < 0.3
    assert (res["corr_after"] > res["corr_before"] + 0.2).all()


def test_alignment_bad_inputs(maps):
    with pytest.raises(ValueError, match="same size"):
        classical_align(maps[0], maps[0, :30, :30, :30])
    with pytest.raises(ValueError, match="cubic"):
        classical_align(maps[0, :, :, :30], maps[0, :, :, :30])
    with pytest.raises(JobError, match="same shape"):
        drive(align_pairs_job(maps[:1], maps[:2], method="classical"))


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
    assert len(res["report"]["iterations"]) == 2
    assert res["report"]["iterations"][-1]["resolution_0.143_A"] < 80
    # the average comes in an arbitrary frame: put it onto the truth before comparing
    r, t, score = classical_align(torch.from_numpy(res["average"]), torch.from_numpy(truth))
    assert score[0] > 0.6
    f_plain = fsc(torch.from_numpy(plain), torch.from_numpy(truth)).fsc[1:6].mean()
    placed = transform_volumes(torch.from_numpy(res["average"]), r[0], t[0])
    f_avg = fsc(placed, torch.from_numpy(truth)).fsc[1:6].mean()
    assert f_avg > f_plain + 0.2


def _tiny_training(maps, steps, checkpoint, **kw):
    net = GumNetConfig.preset("tiny")
    train = TrainConfig(batch=2, val_pairs=3, snrs=[0.1])
    return train_gumnet_job(maps.numpy()[:2], net, train, steps, checkpoint, validate_every=2, metrics_every=1,
                            checkpoint_every=1, **kw)


def test_training_resumes_and_cancel_keeps_a_checkpoint(maps, tmp_path):
    ckpt = tmp_path / "g.pt"
    first = drive(_tiny_training(maps, 2, ckpt))
    assert first["step"] == 2 and ckpt.is_file() and "snr0.1_rot_deg" in first["metrics"]
    events = []
    second = drive(_tiny_training(maps, 3, ckpt), events.append)
    assert any(isinstance(e, Log) and "resumed" in e.message and "step 2" in e.message for e in events)
    assert [e.step for e in events if isinstance(e, Progress)] == [1]
    assert second["history"][0]["step"] == 1  # the history of the first run was kept
    events = []
    again = drive(_tiny_training(maps, 3, ckpt), events.append)  # already there: nothing trained, metrics kept
    assert again["step"] == 3 and again["metrics"] == second["metrics"]
    assert not any(isinstance(e, Progress) for e in events)
    cancel = __import__("threading").Event()

    def stop_after_first(event):
        if isinstance(event, Progress):
            cancel.set()

    with pytest.raises(Cancelled):
        drive(_tiny_training(maps, 10, tmp_path / "c.pt"), stop_after_first, cancel)
    from cryoforge.io.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "c.pt", kind="gumnet")["extra"]["step"] == 1
    model = load_gumnet(ckpt, box=32)
    assert isinstance(model, GumNet) and not model.training


def test_checkpoint_for_another_box_or_kind_is_refused(tmp_path):
    cfg = GumNetConfig.preset("tiny")
    path = save_checkpoint(tmp_path / "g.pt", "gumnet", {**cfg.as_dict(), "architecture_keys": list(ARCH_KEYS)},
                           {"model": GumNet(cfg).state_dict()})
    with pytest.raises(CheckpointError, match="trained for 32³.*40³"):
        load_gumnet(path, box=40)
    other = save_checkpoint(tmp_path / "w.pt", "wgan3d", {}, {})
    with pytest.raises(CheckpointError, match="wgan3d"):
        load_gumnet(other)


def test_cli_run_and_average_write_files(maps, tmp_path):
    import json

    import starfile

    from cryoforge.align.data import simulate_pairs
    from cryoforge.cli import main
    from cryoforge.sim.subtomo import write_pairs

    ds = simulate_pairs(maps[:1].numpy(), 8, TomoParams(snr=5.0, apply_ctf=False), seed=2, structures=["4v5d"])
    write_pairs(ds, tmp_path / "pairs")
    assert main(["align", "run", str(tmp_path / "pairs"), "--method", "classical", "--limit", "3", "--rotations", "1000",
                 "--candidates", "4", "--out", str(tmp_path / "poses.star")]) == 0
    table = starfile.read(tmp_path / "poses.star")
    assert len(table) == 3 and (table["error_rot_deg"] < 5).all()
    assert main(["align", "average", str(tmp_path / "pairs"), "--iterations", "1", "--out", str(tmp_path / "avg")]) == 0
    report = json.loads((tmp_path / "avg" / "average.json").read_text())
    assert report["n"] == 8 and (tmp_path / "avg" / "half2.mrc").is_file()
    assert main(["align", "run", str(tmp_path / "nothing")]) == 2  # not a dataset: one clear error


def test_exported_weights_predict_like_the_checkpoint(tmp_path):
    from cryoforge.align.train import export_weights, gumnet_predict

    cfg = GumNetConfig.preset("tiny")
    net = GumNet(cfg)
    torch.nn.init.normal_(net.regress[-1].weight, std=0.01)
    path = save_checkpoint(tmp_path / "g.pt", "gumnet", {**cfg.as_dict(), "architecture_keys": list(ARCH_KEYS)},
                           {"model": net.state_dict(), "optimizer.model": {}}, extra={"history": [{"step": 1}]})
    slim = export_weights(path, tmp_path / "slim.pt")
    assert slim.stat().st_size < path.stat().st_size
    x = torch.randn(2, 32, 32, 32)
    r1, t1 = gumnet_predict(load_gumnet(path), x, x.flip(-1))
    r2, t2 = gumnet_predict(load_gumnet(slim), x, x.flip(-1))
    assert rotation_angle_deg(r1, r2).max() < 1.0 and (t1 - t2).abs().max() < 0.1
