"""matplotlib figures shared by the CLI and the viewer docks (drawn on a given Axes, or saved)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .metrics import GOLD_STANDARD, HALF, FSCCurve

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .hints import PathLike, Tensorish



def draw_fsc(ax: Axes, curves: dict[str, FSCCurve], title: str | None = None) -> None:
    """FSC curves vs spatial frequency (1/Å) with the 0.5 and 0.143 lines and resolutions in the legend."""
    ax.clear()
    for label, c in curves.items():
        r = c.resolution(GOLD_STANDARD)
        ax.plot(c.frequency, c.fsc, lw=1.5, label=f"{label}: {r:.2f} Å @0.143")
    for t, style in ((HALF, ":"), (GOLD_STANDARD, "--")):
        ax.axhline(t, color="grey", ls=style, lw=1)
        ax.text(0.0, t, f" {t}", va="bottom", ha="left", fontsize=7, color="grey", transform=ax.get_yaxis_transform())
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    if curves:
        fmax = max(c.frequency[-1] for c in curves.values())
        ax.set_xlim(0, fmax)
        sec = ax.secondary_xaxis("top", functions=(lambda f: f, lambda f: f))
        ticks = np.linspace(fmax / 4, fmax, 4)
        sec.set_xticks(ticks)
        sec.set_xticklabels([f"{1 / t:.1f}" for t in ticks], fontsize=7)
        sec.set_xlabel("resolution (Å)", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)


def plot_fsc(curve: FSCCurve, path: PathLike, title: str | None = None) -> None:
    """Save one FSC curve as an image file."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=120)
    draw_fsc(fig.add_subplot(), {"FSC": curve}, title)
    fig.tight_layout()
    fig.savefig(path)


def draw_matrix(ax: Axes, matrix: Tensorish, title: str | None = None, label: str = "index",
                vmin: float | None = None) -> None:
    """A square matrix (e.g. the FSCCC matrix) as an image with a colour bar."""
    ax.clear()
    m = np.asarray(matrix, float)
    im = ax.imshow(m, origin="upper", cmap="viridis", vmin=vmin if vmin is not None else m.min(), vmax=m.max())
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel(label)
    ax.set_ylabel(label)
    if title:
        ax.set_title(title, fontsize=9)


def plot_matrix(matrix: Tensorish, path: PathLike, title: str | None = None, label: str = "index") -> None:
    """Save a square matrix as an image file."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4), dpi=120)
    draw_matrix(fig.add_subplot(), matrix, title, label)
    fig.tight_layout()
    fig.savefig(path)
