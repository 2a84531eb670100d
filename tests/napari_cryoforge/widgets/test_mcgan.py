"""The Multi-CryoGAN dock: train on a small stack with live plot and preview layers, open the result in the Latent
explorer, resume from the checkpoint, and bad input as one notification."""

import pytest


@pytest.fixture
def mcgan(docked):
    from napari_cryoforge.widgets.mcgan import McganWidget

    return docked(McganWidget)


@pytest.fixture
def small_stack(tmp_path):
    """64 noise-free, CTF-free 16² projections of a few Gaussians."""
    from cryoforge.io.mrc import write_mrc
    from cryoforge.jobs.runner import drive
    from cryoforge.multicryogan.projector import gaussian_blobs
    from cryoforge.sim.params import ParticleParams
    from cryoforge.sim.particles import Ensemble, simulate_particles_job

    vol, _ = gaussian_blobs(16, count=5, sigma=1.5, seed=1)
    imgs = drive(simulate_particles_job(Ensemble(vol.numpy(), None), 64,
                                        ParticleParams(snr=None, apply_ctf=False, pixel_size=4.0), seed=0)).images
    path = tmp_path / "p.mrcs"
    write_mrc(path, imgs, 4.0, stack=True)
    return path


def test_train_shows_progress_layers_and_opens_in_explorer(mcgan, qtbot, small_stack, tmp_path, wait_job,
                                                           stall_meter):
    viewer, w = mcgan
    w.particles.stack.setText(str(small_stack))
    w.particles.no_ctf.setChecked(True)
    w.particles.size.setValue(16)
    w.training.steps.setValue(12)
    w.training.checkpoint.setText(str(tmp_path / "m.pt"))
    stall_meter.start()
    w.train()
    assert "64 images, 16² at 4.00 Å/px, no CTF" in w.training.status.text()
    wait_job(w)
    assert stall_meter.stop("Multi-CryoGAN (training)") <= stall_meter.allowance_ms
    assert w.last_result.step == 12 and (tmp_path / "m.pt").is_file()
    names = {ly.name for ly in viewer.layers}
    assert {"mcgan: real vs simulated images", "mcgan: G(α = 0.5)"} <= names
    assert any(n.startswith("mcgan: G(α) central slices") for n in names)
    assert viewer.layers["mcgan: G(α = 0.5)"].data.shape == (16, 16, 16)
    assert viewer.layers["mcgan: real vs simulated images"].data.shape == (16, 16, 16)  # 8 real + 8 simulated
    assert len(w.training.curves["Wasserstein estimate"]) >= 2 and not w.training.canvas.isHidden()
    assert w.explore_btn.isEnabled()
    explorer = w.explore()
    assert explorer.manifold is not None and explorer.manifold.latent_dim == 1
    # training again resumes from the checkpoint
    w.training.steps.setValue(14)
    w.train()
    wait_job(w)
    assert w.last_result.step == 14
    assert w.last_result.history[0]["step"] <= 12 < w.last_result.history[-1]["step"]


def test_bad_input_is_one_notification(mcgan, small_stack, notifications):
    _, w = mcgan
    w.particles.stack.setText(str(small_stack))  # no STAR file and CTF not switched off
    w.train()
    assert w.job is None
    errors = [m for s, m in notifications if s == "error"]
    assert len(errors) == 1 and "STAR file" in errors[0] and "'images have no CTF'" in errors[0]
    w.particles.stack.setText(str(small_stack.parent / "missing.mrcs"))
    w.particles.no_ctf.setChecked(True)
    w.train()
    assert w.job is None and "no such file" in [m for s, m in notifications if s == "error"][-1]
