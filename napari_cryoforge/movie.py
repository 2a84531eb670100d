"""The GL movie renderer: a latent path ``(T, Z, Y, X)`` shown as a napari layer whose frame axis napari-animation
scrubs from the first to the last frame (optionally turning the camera), written by imageio. The engine finds
it through the ``cryoforge.renderers`` entry point; the explorer's *Movie* button calls :func:`animate_layer`."""

from __future__ import annotations

from pathlib import Path

from ._camera import camera


def animate_layer(viewer, frames: int, out, fps: int = 10, rotate: float = 0.0, axis: int = 0) -> int:
    """Write a movie of ``viewer`` stepping dims ``axis`` from 0 to ``frames − 1``; returns the frame count."""
    from napari_animation import Animation
    from qtpy.QtWidgets import QApplication

    from cryoforge.io.atomic import atomic_path

    if frames < 2:
        raise ValueError("a movie needs at least two frames")
    QApplication.processEvents()  # let the canvas settle (size, 3-D switch) so every frame has one size
    anim = Animation(viewer)
    angles = tuple(camera(viewer).angles)
    viewer.dims.set_current_step(axis, 0)
    anim.capture_keyframe(steps=1)
    viewer.dims.set_current_step(axis, frames - 1)
    if rotate:
        camera(viewer).angles = (angles[0], angles[1] + rotate, angles[2])
    anim.capture_keyframe(steps=frames - 1)
    out = Path(out)
    with atomic_path(out, keep_suffix=True) as tmp:
        anim.animate(str(tmp), fps=fps, canvas_only=True, quality=7)
    camera(viewer).angles = angles
    return frames


def render_napari(volumes, voxel_size: float, out, fps: int = 10, rotate: float = 0.0, iso: float | None = None,
                  colormap: str = "gray", size: tuple[int, int] = (720, 640)) -> int:
    """Render ``volumes`` ``(T, D, D, D)`` in 3-D in a napari window (it must be shown: a hidden canvas renders
    black) and write the movie ``out``; the window closes when the movie is written."""
    import napari
    import numpy as np

    viewer = napari.Viewer(show=True, title="cryoforge movie")
    viewer.window.resize(*size)
    lo, hi = np.percentile(volumes[:: max(1, len(volumes) // 8)], [1, 99.9])
    viewer.add_image(volumes, name="latent path", scale=(1,) + (voxel_size,) * 3, colormap=colormap,
                     contrast_limits=(float(lo), float(hi)), rendering="iso" if iso is not None else "mip",
                     iso_threshold=iso if iso is not None else 0.5, axis_labels=("frame", "z", "y", "x"),
                     units=("angstrom",) * 4)
    viewer.dims.ndisplay = 3
    camera(viewer).angles = (15, -35, 60)
    viewer.scale_bar.visible = True  # in Å: the layer's scale and units
    viewer.reset_view()
    try:
        return animate_layer(viewer, len(volumes), out, fps, rotate)
    finally:
        viewer.close()
