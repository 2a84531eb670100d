"""Tests of :mod:`cryoforge.manifold.paths`."""

import numpy as np
import pytest

from cryoforge.manifold import ManifoldError, make_path
from cryoforge.manifold.analytic import AnalyticManifold


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
    ([[0.0, 0.0], [1.0, 1.0]], 5, "zigzag", "unknown path method"),
    ([[0.0, 0.0], [1.0, 1.0]], 5, "graph", "data latents"),
])
def test_bad_paths(points, frames, kind, msg):
    with pytest.raises(ManifoldError, match=msg):
        make_path(points, frames, kind)
