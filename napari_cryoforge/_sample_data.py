"""Sample data: the engine's phantom density and two noisy half maps (computed, no download)."""

from __future__ import annotations

VOXEL_SIZE = 2.0


def phantom_with_half_maps():
    from cryoforge.phantom import blob_phantom, noisy_half_maps

    vol = blob_phantom(64, VOXEL_SIZE, seed=0)
    h1, h2 = noisy_half_maps(vol, snr=1.0, seed=1)
    rec = {"voxel_size": (VOXEL_SIZE,) * 3, "is_stack": False}
    common = {"scale": (VOXEL_SIZE,) * 3, "metadata": {"cryoforge": rec}, "units": ("angstrom",) * 3,
              "axis_labels": ("z", "y", "x")}
    return [
        (h1, {"name": "phantom half 1", "colormap": "gray", "visible": False, **common}, "image"),
        (h2, {"name": "phantom half 2", "colormap": "gray", "visible": False, **common}, "image"),
        (vol, {"name": "phantom", "colormap": "gray", **common}, "image"),
    ]
