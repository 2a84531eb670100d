"""The Latent explorer dock: live decoding (latest request only), scatter clicks and waypoints, path layer,
GL movie under Xvfb, the nearest known structure, and bad input."""


import numpy as np
import pytest

from tests.helpers import CRYODRGN, needs_het_weights


@pytest.fixture
def explorer(make_napari_viewer, qtbot):
    """A shown viewer (a hidden canvas renders black frames) with the explorer docked."""
    from napari_cryoforge.widgets.explorer import LatentExplorer

    viewer = make_napari_viewer(show=True)
    w = LatentExplorer(viewer)
    viewer.window.add_dock_widget(w)
    yield viewer, w
    qtbot.waitUntil(lambda: not w.live.busy and (w.job is None or not w.job.running), timeout=30000)


def _idle(qtbot, w):
    qtbot.waitUntil(lambda: not w.live.busy and (w.live_job is None or not w.live_job.running), timeout=30000)


def test_slider_change_shows_the_new_volume(explorer, qtbot, stall_meter):
    viewer, w = explorer
    assert w.load("analytic")
    _idle(qtbot, w)
    first = viewer.layers["explorer: volume"].data.copy()
    stall_meter.start()
    w.latent.sliders[0].setValue(80)
    _idle(qtbot, w)
    assert stall_meter.stop("Latent explorer (live decode)") <= stall_meter.allowance_ms
    shown = viewer.layers["explorer: volume"].data
    np.testing.assert_allclose(shown, w.manifold.decode_one(w.current_z), atol=1e-6)
    assert not np.allclose(shown, first) and w.decode_ms and "decode" in w.latent.status.text()


def test_stale_requests_are_dropped_and_the_last_is_shown(explorer, qtbot):
    viewer, w = explorer
    w.load("analytic:3")
    _idle(qtbot, w)
    started = w.live.started
    zs = [np.array([t, -t, 0.5 * t], np.float32) for t in np.linspace(-2, 2, 12)]
    for z in zs:  # all arrive while the first decode runs (its end is delivered by the event loop)
        w.request(z)
    _idle(qtbot, w)
    assert w.live.started - started == 2 and w.live.dropped >= 10
    np.testing.assert_allclose(w.shown_z, zs[-1])
    np.testing.assert_allclose(viewer.layers["explorer: volume"].data, w.manifold.decode_one(zs[-1]), atol=1e-6)


def test_click_waypoints_path_layer_and_gl_movie(explorer, qtbot, tmp_path):
    import imageio.v3 as iio

    viewer, w = explorer
    w.load("analytic")
    _idle(qtbot, w)
    for i in (0, 5):  # a click decodes, a shift-click adds a waypoint
        x, y = w._xy[i, :2]
        w._clicked(type("E", (), {"inaxes": w.ax, "xdata": x, "ydata": y, "key": None})())
        w._clicked(type("E", (), {"inaxes": w.ax, "xdata": x, "ydata": y, "key": "shift"})())
    _idle(qtbot, w)
    np.testing.assert_allclose(w.shown_z, w.manifold.data_latents[5])
    assert len(w.waypoints) == 2 and "2 waypoint" in w.paths.waypoint_label.text()
    w.paths.frames.setValue(6)
    w.paths.path_method.setCurrentText("graph")
    w.preview_path()
    qtbot.waitUntil(lambda: not w.job.running, timeout=30000)
    layer = viewer.layers["explorer: path"]
    assert layer.data.shape == (6, 32, 32, 32)
    np.testing.assert_allclose(layer.data[0], w.manifold.decode_one(w.manifold.data_latents[0]), atol=1e-5)
    out = tmp_path / "walk.gif"
    w.paths.movie_out.setText(str(out))
    w.write_movie()
    frames = iio.imread(out, mode="RGB")  # a GIF may store later frames as RGBA
    assert frames.shape[0] == 6 and frames[..., :3].max() > 0  # GL rendered something
    assert not np.array_equal(frames[0], frames[-1])  # and the hinge moved
    assert np.loadtxt(tmp_path / "walk.gif.z.txt").shape == (6, 2)


def test_wgan_names_the_nearest_known_structure(explorer, qtbot):
    viewer, w = explorer
    assert w.load("wgan")
    _idle(qtbot, w)
    labels = w.manifold.data_labels
    w.request(w.manifold.data_latents[labels.index("4v1w")])
    _idle(qtbot, w)
    assert w.display.nearest.text().startswith("nearest known structure: ") and "r = " in w.display.nearest.text()
    assert viewer.layers["explorer: volume"].scale[0] == pytest.approx(12.0)


def test_bad_inputs(explorer, qtbot, notifications, tmp_path):
    from cryoforge.samples import GUMNET_CHECKPOINT, sample_path

    viewer, w = explorer
    assert not w.load(str(tmp_path / "nothing.pt"))
    assert not w.load(str(sample_path(GUMNET_CHECKPOINT)))
    assert w.manifold is None
    w.load("analytic")
    _idle(qtbot, w)
    w.add_waypoint(np.zeros(2, np.float32))
    w.preview_path()  # one waypoint
    w.write_movie()  # no path yet
    text = " ".join(m for _, m in notifications)
    assert "no such model file" in text and "not a generative model" in text
    assert "at least two points" in text and "preview a path first" in text


def test_movie_cli_gl_renderer(tmp_path):
    """`cryoforge movie … --renderer gl`: napari + napari-animation under Xvfb write N frames. A process of its own,
    as a user runs it (a napari viewer made outside the test fixtures would leave state behind in this one)."""
    import subprocess
    import sys

    import imageio.v3 as iio

    out = tmp_path / "gl.mp4"
    run = subprocess.run([sys.executable, "-m", "cryoforge.cli", "movie", "analytic", "--from=-2,0", "--to", "2,0",
                          "--frames", "5", "--out", str(out), "--renderer", "gl", "--rotate", "30"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "5 frames, gl renderer" in run.stdout
    frames = iio.imread(out)
    assert frames.shape[0] == 5 and frames.max() > 0 and not np.array_equal(frames[0], frames[-1])


@needs_het_weights
def test_real_cryodrgn_run_in_the_explorer(explorer, qtbot):
    viewer, w = explorer
    assert w.load(str(CRYODRGN / "het_weights.pkl"))
    _idle(qtbot, w)
    assert w.manifold.kind == "cryodrgn" and viewer.layers["explorer: volume"].data.shape == (64, 64, 64)
    w.latent.axes_mode.setCurrentIndex(1)  # latent dimensions (no z.pkl: random samples span the sliders)
    _idle(qtbot, w)
    w.latent.sliders[2].setValue(-60)
    _idle(qtbot, w)
    np.testing.assert_allclose(viewer.layers["explorer: volume"].data, w.manifold.decode_one(w.current_z), atol=1e-5)
    assert w.current_z[2] != 0 and np.allclose(np.delete(w.current_z, 2), 0)


def test_a_one_dimensional_latent_is_one_slider_named_alpha(explorer, qtbot):
    """Multi-CryoGAN's latent is α ∈ [0, 1]: one slider named α, the data drawn along α (not a PCA plane)."""
    viewer, w = explorer
    assert w.load("mcgan")
    _idle(qtbot, w)
    shown = [lab.text() for lab in w.latent.slider_labels if lab.isVisibleTo(w)]
    assert shown == ["α"] and w.ax.get_xlabel() == "α" and w.ax.get_ylabel() == ""
    assert np.allclose(w._project(np.array([[0.25]]))[0], [0.25, 0.0])


def test_the_dock_shows_the_iso_threshold_the_layer_has(explorer, qtbot):
    """The dock's threshold is a fraction of the contrast range; beside it stands the layer's own iso value."""
    viewer, w = explorer
    assert w.load("analytic")
    _idle(qtbot, w)
    w.display.iso.setChecked(True)
    w.display.threshold.setValue(0.3)
    ly = viewer.layers["explorer: volume"]
    lo, hi = ly.contrast_limits
    assert ly.iso_threshold == pytest.approx(lo + 0.3 * (hi - lo), rel=1e-4)
    assert w.display.iso_value.text() == f"= {ly.iso_threshold:.3g}"
