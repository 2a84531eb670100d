"""Latent interpolation movies: decode a latent path, render each volume, write MP4 or GIF with imageio.

Renderers: ``gl`` (a 3-D rendering by the viewer plugin with its animation tool; needs a GL context; found through
the ``cryoforge.renderers`` entry point, so the engine imports no GUI package), and two fallbacks
that need no GL: ``slices`` (the three central orthogonal slices) and ``projection`` (sums along z, y and x).
Contrast is fixed over the whole movie. The latent path is saved beside the movie (``<movie>.z.txt``) with a JSON
record of how it was made (``<movie>.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..jobs import Log, Progress, Result
from ..latent import ManifoldError
from .live import path_job

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from matplotlib.lines import Line2D

    from ..hints import PathLike, Tensorish
    from ..jobs import Event
    from ..latent import Manifold


RENDERERS = ("auto", "gl", "slices", "projection")
MOVIE_SUFFIXES = (".mp4", ".gif")


def gl_renderer() -> Callable[..., int] | None:
    """The plugin's GL renderer, or None when it is not installed."""
    for ep in entry_points(group="cryoforge.renderers"):
        if ep.name == "gl":
            try:
                return ep.load()
            except Exception:  # noqa: BLE001 - a broken GL stack means: use a fallback
                return None
    return None


def choose_renderer(name: str) -> str:
    """Check a renderer name against the installed renderers; returns it."""
    if name not in RENDERERS:
        raise ManifoldError(f"unknown renderer {name!r}; choose one of {', '.join(RENDERERS)}")
    if name != "auto":
        return name
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return "gl" if has_display and gl_renderer() is not None else "slices"


def panels(volume: np.ndarray, mode: str) -> list[np.ndarray]:
    """Three 2-D views of a ``(Z, Y, X)`` volume: central XY, XZ, YZ slices or projections along z, y, x."""
    if mode == "projection":
        return [volume.sum(0), volume.sum(1), volume.sum(2)]
    c = [n // 2 for n in volume.shape]
    return [volume[c[0]], volume[:, c[1]], volume[:, :, c[2]]]


PLANES = ("x–y", "x–z", "y–z")  # the panels of panels(): volume[cz] (Y, X), volume[:, cy] (Z, X), volume[..., cx] (Z, Y)


def render_fallback(volumes: np.ndarray, mode: str = "slices", cmap: str = "gray", scale: int = 4,
                    titles: Sequence[str] | None = None, voxel_size: float | None = None) -> Iterator[np.ndarray]:
    """Frames ``(H, W, 3)`` uint8, one per volume: three panels side by side (XY | XZ | YZ), fixed contrast; with
    ``titles`` each frame is labelled, its panels named (``x–y`` …) and, with ``voxel_size`` (Å), a scale bar drawn."""
    import matplotlib

    if mode not in ("slices", "projection"):
        raise ManifoldError(f"fallback renderers are 'slices' and 'projection', not {mode!r}")
    lut = matplotlib.colormaps[cmap]
    views = [panels(v, mode) for v in volumes]
    flat = np.concatenate([np.ravel(p) for vs in views[:: max(1, len(views) // 8)] for p in vs])
    lo, hi = np.percentile(flat, [0.5, 99.8])
    gap = np.zeros((views[0][0].shape[0], 2))
    for i, vs in enumerate(views):
        strip = np.concatenate([x for p in vs for x in (p, gap)][:-1], axis=1)
        rgb = lut(np.clip((strip - lo) / max(hi - lo, 1e-12), 0, 1))[..., :3]
        frame = (np.kron(rgb, np.ones((scale, scale, 1))) * 255).astype(np.uint8)
        if titles is not None:
            panel = (vs[0].shape[1] + gap.shape[1]) * scale
            frame = _stamp(frame, titles[i], panel, None if voxel_size is None else voxel_size / scale)
        yield frame


def scale_bar_length(extent: float) -> float:
    """A round length (Å) near a quarter of ``extent`` Å for a scale bar: 1, 2 or 5 × 10ⁿ."""
    target = max(extent / 4, 1e-6)
    p = 10 ** np.floor(np.log10(target))
    return float(min((m * p for m in (1, 2, 5, 10)), key=lambda v: abs(v - target)))


def _stamp(frame: np.ndarray, text: str, panel_px: int | None = None, angstrom_per_px: float | None = None) -> np.ndarray:
    """Write ``text`` in the frame's top-left corner, each panel's plane name (:data:`PLANES`, panels ``panel_px``
    wide) at its bottom left, and a scale bar in the first panel (``angstrom_per_px``); matplotlib's Agg, no
    window."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = frame.shape[:2]
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.figimage(frame, 0, 0)
    fig.text(0.01, 0.97, text, color="yellow", fontsize=9, va="top", family="monospace")
    if panel_px:
        for k, name in enumerate(PLANES):
            fig.text((k * panel_px + 4) / w, 4 / h, name, color="yellow", fontsize=8, va="bottom")
    if panel_px and angstrom_per_px:
        length = scale_bar_length(panel_px * angstrom_per_px)
        px = length / angstrom_per_px
        x1 = panel_px - 8 - 2  # right end, inside the first panel
        fig.add_artist(_scale_bar_line(((x1 - px) / w, x1 / w), (8 / h, 8 / h)))
        label = f"{length / 10:g} nm" if length >= 10 else f"{length:g} Å"
        fig.text((x1 - px / 2) / w, 12 / h, label, color="white", fontsize=8, ha="center", va="bottom")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _scale_bar_line(xs: tuple[float, float], ys: tuple[float, float]) -> Line2D:
    """A white 3-pixel line in figure coordinates (the scale bar)."""
    from matplotlib.lines import Line2D

    return Line2D(xs, ys, color="white", linewidth=3, solid_capstyle="butt")


def write_frames(frames: Iterable[np.ndarray], out: PathLike, fps: int) -> int:
    """Write frames to ``out`` (.mp4 through imageio-ffmpeg, .gif through Pillow), atomically; returns the count."""
    import imageio.v2 as imageio

    from ..io.atomic import atomic_path

    out = Path(out)
    n = 0
    kw = {"fps": fps, "macro_block_size": 1, "quality": 7} if out.suffix == ".mp4" else {"duration": 1000 / fps, "loop": 0}
    with atomic_path(out, keep_suffix=True) as tmp, imageio.get_writer(tmp, **kw) as w:
        for f in frames:
            w.append_data(f)  # type: ignore[attr-defined]  # imageio's v2 writers, untyped
            n += 1
    return n


def save_path(out: PathLike, path_z: Tensorish, record: dict) -> tuple[Path, Path]:
    """The z path (``<movie>.z.txt``, one point per line) and the movie's record (``<movie>.json``)."""
    out = Path(out)
    ztxt, meta = out.with_name(out.name + ".z.txt"), out.with_name(out.name + ".json")
    np.savetxt(ztxt, np.asarray(path_z), fmt="%.6g", header=f"latent path of {out.name}: {len(path_z)} frames")
    meta.write_text(json.dumps(record, indent=1))
    return ztxt, meta


@dataclass
class MovieResult:
    """A movie written: its path, the latent path's text file and the JSON record beside it, frames, renderer."""

    movie: str
    z_path: str
    record: str
    frames: int
    renderer: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def movie_job(manifold: Manifold, path_z: Tensorish, out: PathLike, fps: int = 10, renderer: str = "auto",
              rotate: float = 0.0,
              iso: float | None = None, colormap: str = "gray", record: dict | None = None) -> Iterator[Event]:
    """Job: decode ``path_z`` ``(T, d)`` and write the movie ``out``; ``Result`` is a :class:`MovieResult`."""
    out = Path(out)
    if out.suffix not in MOVIE_SUFFIXES:
        raise ManifoldError(f"{out.name}: a movie ends in {' or '.join(MOVIE_SUFFIXES)}")
    path_z = np.asarray(path_z, np.float32)
    if path_z.ndim != 2 or len(path_z) < 1:
        raise ManifoldError("the latent path must be (frames, latent_dim) with at least one frame")
    from ..resources import check_allocation

    check_allocation(len(path_z) * manifold.box ** 3 * 4 * 2, f"{len(path_z)} frames of {manifold.box}³",
                     "make fewer frames (--frames)")
    kind = choose_renderer(renderer)
    volumes: np.ndarray | None = None
    for ev in path_job(manifold, path_z):
        if isinstance(ev, Result):
            volumes = ev.value
        else:
            yield ev
    if volumes is None:
        raise ManifoldError("decoding the path gave no volumes")
    yield Log(f"rendering {len(volumes)} frames with the {kind!r} renderer")
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gl":
        render = gl_renderer()
        if render is None:
            raise ManifoldError("the GL renderer is not available (is the viewer plugin installed with a Qt "
                                "binding?); use --renderer slices or projection")
        n = render(volumes, manifold.voxel_size, out, fps=fps, rotate=rotate, iso=iso, colormap=colormap)
    else:
        titles = [f"frame {i + 1}/{len(volumes)}" for i in range(len(volumes))]
        frames = render_fallback(volumes, kind, colormap, scale=max(1, 256 // manifold.box), titles=titles,
                                 voxel_size=manifold.voxel_size)
        n = write_frames(frames, out, fps)
    yield Progress(len(volumes), len(volumes), "movie written")
    rec = {"model": manifold.name, "kind": manifold.kind, "frames": int(n), "fps": fps, "renderer": kind,
           "voxel_size": manifold.voxel_size, "rotate_deg": rotate, **(record or {})}
    ztxt, meta = save_path(out, path_z, rec)
    yield Result(MovieResult(str(out), str(ztxt), str(meta), int(n), kind))
