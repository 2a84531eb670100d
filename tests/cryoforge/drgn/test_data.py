"""Tests of :mod:`cryoforge.drgn.data`."""


import numpy as np
import torch

from cryoforge.ctf import CTFParams, ctf_2d
from cryoforge.drgn.data import ParticleImages, ht2_center, symmetrize, translate_ht
from tests.helpers import R31, read_quiet


def test_hartley_shift_equals_rolling_the_image():
    img = torch.zeros(16, 16)
    img[5:9, 6:8] = torch.rand(4, 2) + 1
    data = ParticleImages(img[None].numpy(), window=False, norm=(0.0, 1.0))
    h = symmetrize(ht2_center(img[None])).flatten(1)
    shifted = translate_ht(h, torch.tensor([[3.0, -2.0]]), data.coords)  # +3 px in x, −2 px in y
    want = symmetrize(ht2_center(torch.roll(img, (-2, 3), (0, 1))[None])).flatten(1)
    inner = data.coords[:, :2].abs().max(1).values < 0.5  # the Nyquist wrap is not a shift's business
    np.testing.assert_allclose(shifted[:, inner], want[:, inner], atol=1e-4)


def test_training_images_use_each_particles_pixel_size():
    from cryoforge.drgn.data import ParticleImages

    meta = read_quiet(R31)
    ctf = {k: np.asarray(v) for k, v in meta.ctf.as_dict().items()}
    data = ParticleImages(np.zeros((18, 16, 16), np.float32), None, None, ctf, meta.pixel_sizes, window=False,
                          norm=(0.0, 1.0))
    i = int(np.nonzero(meta.pixel_sizes == 1.25)[0][0])
    row = CTFParams(**{k: v[i] for k, v in ctf.items()})
    want = ctf_2d(row, (16, 16), 1.25, rfft=False, fftshift=True)
    got = data.ctf_values([i]).view(17, 17)[:-1, :-1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    at_first = ctf_2d(row, (16, 16), 1.24, rfft=False, fftshift=True)
    assert (at_first - want).abs().max() > 1e-3  # the grid's pixel size would be measurably wrong
