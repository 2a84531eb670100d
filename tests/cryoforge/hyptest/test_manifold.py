"""Tests of :mod:`cryoforge.hyptest.manifold`."""

import numpy as np
import pytest

from cryoforge.manifold import ManifoldError, make_path, open_manifold


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
