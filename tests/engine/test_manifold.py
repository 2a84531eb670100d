"""Manifold protocol, analytic manifold, latent paths, latest-only scheduling, the 3D-WGAN manifold, loaders."""

import numpy as np
import pytest

from cryoforge.manifold import ManifoldError, make_path, open_manifold
from cryoforge.manifold.analytic import AnalyticManifold
from cryoforge.manifold.live import LatestOnly


def test_analytic_decode_batches_match_single_points():
    m = AnalyticManifold(3, box=24)
    z = m.sample(5, 1)
    batch = m.decode(z).numpy()
    assert batch.shape == (5, 24, 24, 24) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[3], m.decode_one(z[3]), atol=1e-6)
    assert not np.allclose(batch[0], batch[1])  # different latents, different shapes


def test_analytic_first_coordinate_turns_the_arm():
    m = AnalyticManifold(2, box=32)
    c, _, _ = m.blobs(__import__("torch").tensor([[0.0, 0.0], [10.0, 0.0]]))
    tip0, tip1 = c[0, 2].numpy(), c[1, 2].numpy()
    angle = np.degrees(np.arctan2(tip1[1], tip1[0]) - np.arctan2(tip0[1], tip0[0]))
    assert angle == pytest.approx(75.0, abs=0.5)


@pytest.mark.parametrize("z, msg", [(np.zeros((2, 3)), "2 coordinates"), ([np.nan, 0.0], "NaN")])
def test_bad_latent_points(z, msg):
    with pytest.raises(ManifoldError, match=msg):
        AnalyticManifold(2).decode(z)


def test_linear_and_spherical_paths():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    lin = make_path([a, b], 5, "linear")
    np.testing.assert_allclose(lin[[0, -1]], [a, b], atol=1e-6)
    steps = np.linalg.norm(np.diff(lin, axis=0), axis=1)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-5)  # equal spacing
    sph = make_path([a, b], 9, "spherical")
    angles = np.degrees(np.arctan2(sph[:, 1], sph[:, 0]))
    np.testing.assert_allclose(np.diff(angles), 90 / 8, atol=0.5)  # the great circle at constant angular speed
    np.testing.assert_allclose(np.linalg.norm(sph, axis=1), np.linspace(1, 2, 9), atol=0.05)
    three = make_path([a, b, -a], 9, "linear")
    assert np.allclose(three[4], b, atol=1e-5)  # passes through the middle waypoint


def test_graph_path_follows_the_data_not_the_chord():
    m = AnalyticManifold(2)
    data = m.data_latents
    start, end = np.argmin(data[:, 0]), np.argmax(data[:, 0])
    graph = make_path([data[start], data[end]], 25, "graph", data)
    line = make_path([data[start], data[end]], 25, "linear")

    def off_data(path):
        return max(np.min(np.linalg.norm(data - p, axis=1)) for p in path)

    assert off_data(graph) < 0.3 < off_data(line)  # the chord of the arc leaves the data


@pytest.mark.parametrize("points, frames, kind, msg", [
    ([[0.0, 0.0]], 5, "linear", "at least two points"),
    ([[0.0, 0.0], [1.0, 1.0]], 0, "linear", "must be positive"),
    ([[0.0, 0.0], [1.0, 1.0]], -3, "spherical", "must be positive"),
    ([[0.0, 0.0], [1.0, 1.0]], 5, "zigzag", "unknown path kind"),
    ([[0.0, 0.0], [1.0, 1.0]], 5, "graph", "data latents"),
])
def test_bad_paths(points, frames, kind, msg):
    with pytest.raises(ManifoldError, match=msg):
        make_path(points, frames, kind)


def test_latest_only_drops_stale_requests():
    started = []
    live = LatestOnly(started.append)
    for i in range(10):
        live.submit(i)  # the first starts, the rest arrive while it runs
    assert started == [0] and live.pending == 9 and live.dropped == 8
    live.done()
    assert started == [0, 9] and live.pending is None
    live.done()
    live.submit(10)
    assert started == [0, 9, 10]


def test_wgan_manifold_encodes_and_walks_between_known_complexes():
    m = open_manifold("wgan")
    assert m.kind == "wgan3d" and m.latent_dim == 100 and m.box == 32 and m.voxel_size == 12.0
    assert {"proteasome", "ribosome", "4v5d"} <= set(m.data_labels) and m.can_encode
    s, d = (m.data_latents[m.data_labels.index(n)] for n in ("proteasome", "ribosome"))
    path = make_path([s, d], 6, "linear")
    vols = m.decode(path).numpy()
    assert vols.shape == (6, 32, 32, 32) and 0 <= vols.min() and vols.max() <= 1
    z = m.encode(vols[:2])
    assert z.shape == (2, 100) and np.isfinite(z).all()
    with pytest.raises(ManifoldError, match="encode takes"):
        m.encode(np.zeros((16, 16, 16)))


def test_open_manifold_bad_inputs(tmp_path):
    from cryoforge.samples import GUMNET_CHECKPOINT, sample_path

    with pytest.raises(ManifoldError, match="'gumnet' checkpoint is not a generative model"):
        open_manifold(sample_path(GUMNET_CHECKPOINT))
    with pytest.raises(FileNotFoundError):
        open_manifold(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="not a cryoforge checkpoint"):
        open_manifold(tmp_path / "junk.pt")
    with pytest.raises(ManifoldError, match="no encoder"):
        AnalyticManifold(2).encode(np.zeros((32, 32, 32)))


def test_nearest_structure_names_the_template():
    from cryoforge.manifold.analysis import nearest_structure

    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8, 8))
    name, score, scores = nearest_structure(maps[2] + 0.1 * rng.random((8, 8, 8)), maps, list("abcd"))
    assert name == "c" and score == pytest.approx(scores.max()) and score > 0.9
