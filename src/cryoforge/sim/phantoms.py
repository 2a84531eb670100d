"""Procedural macromolecule-like phantoms that need no files, as pseudo-atomic models.

Each phantom is a cloud of pseudo-atoms (carbon, about one per 30 Å³ of protein-like volume) built
from ellipsoidal subunits, sized like the real complex it imitates, so it goes through the same
density code as a PDB model (:func:`cryoforge.sim.density.models_to_density`). ``seed`` jitters
subunit sizes and positions and draws the atoms; the same seed gives the same phantom.

========== ===============================================================================
kind       shape
========== ===============================================================================
proteasome 20S-like: four stacked rings of seven subunits, ~150 Å long, ~110 Å wide (D7)
ribosome   70S-like: a large and a small subunit with a cleft, ~250 Å (asymmetric)
ferritin   apoferritin-like hollow 24-mer cage, outer Ø ~120 Å, cavity Ø ~80 Å (octahedral)
multiblob  an asymmetric cluster of 6–9 blobs of different sizes, ~100 Å
assembly   a larger asymmetric complex: 10–15 subunits of different sizes around a core, ~200 Å
filament   actin-like helical segment: 9–11 subunits, 27.5 Å rise, −167° twist, ~280 Å × 70 Å
ring       a flat ring of 8–12 subunits (clamp / peroxiredoxin-like), Ø ~180–220 Å, ~40 Å thick
dumbbell   two globular domains of unequal size joined by a thin bent linker, ~260 Å end to end
tripod     three arms of two domains each from a small hub (antibody / Y-like), irregular angles, ~200 Å
crescent   7–9 subunits along a 110–150° arc of radius ~100 Å, slightly twisted out of plane (BAR-like)
========== ===============================================================================
"""

from __future__ import annotations

import itertools

import numpy as np

from .atoms import AtomicModel

PHANTOMS = ("proteasome", "ribosome", "ferritin", "multiblob", "assembly", "filament", "ring", "dumbbell", "tripod",
            "crescent")
ATOM_VOLUME = 30.0  # Å³ per pseudo-atom


def _ellipsoid(rng, centre, radii, rotation=None) -> np.ndarray:
    radii = np.asarray(radii, float)
    n = max(8, int(4 / 3 * np.pi * radii.prod() / ATOM_VOLUME))
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pts = u * rng.random((n, 1)) ** (1 / 3) * radii
    if rotation is not None:
        pts = pts @ np.asarray(rotation).T
    return pts + np.asarray(centre, float)


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def octahedral_group() -> np.ndarray:
    """The 24 proper rotations of the cube/octahedron, ``(24, 3, 3)``."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for i, (j, s) in enumerate(zip(perm, signs, strict=True)):
                m[i, j] = s
            if np.isclose(np.linalg.det(m), 1):
                mats.append(m)
    return np.array(mats)


def _proteasome(rng):
    parts = []
    for ring, z in enumerate((-56, -19, 19, 56)):
        outer = ring in (0, 3)  # alpha rings are slightly narrower
        r_ring = 38 if outer else 42
        phase = rng.uniform(0, 2 * np.pi / 7)
        for k in range(7):
            a = phase + 2 * np.pi * k / 7
            radii = np.array([14, 17, 17]) * rng.uniform(0.92, 1.08, 3)
            parts.append(_ellipsoid(rng, (r_ring * np.cos(a), r_ring * np.sin(a), z), radii, _rot_z(a)))
    return np.concatenate(parts)


def _ribosome(rng):
    j = rng.uniform(0.95, 1.05, 6)
    large = _ellipsoid(rng, (0, 0, -30), np.array([110, 95, 75]) * j[:3])
    small = _ellipsoid(rng, (15, -10, 70), np.array([95, 60, 42]) * j[3:], _rot_z(0.4) @ _rot_x(0.25))
    # carve the inter-subunit cleft and add a protruding stalk
    pts = np.concatenate([large, small])
    cleft = np.linalg.norm((pts - np.array([5, 0, 33])) / np.array([60, 40, 14]), axis=1) > 1
    stalk = _ellipsoid(rng, (-95, 40, -10), np.array([30, 14, 14]) * rng.uniform(0.9, 1.1, 3), _rot_z(-0.6))
    return np.concatenate([pts[cleft], stalk])


def _ferritin(rng):
    radii = np.array([12, 12, 25]) * rng.uniform(0.95, 1.05, 3)
    # one subunit: a bundle lying tangent to the shell at a general position (off every symmetry axis)
    centre = np.array([0.25, 0.5, 0.83])
    centre = 50 * centre / np.linalg.norm(centre)
    axis = np.cross(centre, [1.0, 0, 0])
    axis /= np.linalg.norm(axis)
    other = np.cross(centre / 50, axis)
    rot = np.stack([other, centre / 50, axis], axis=1)  # local z (long axis) -> tangent
    sub = _ellipsoid(rng, centre, radii, rot)
    return np.concatenate([sub @ g.T for g in octahedral_group()])


def _multiblob(rng):
    n = rng.integers(6, 10)
    centers = rng.normal(size=(n, 3)) * 22
    parts = [_ellipsoid(rng, c, rng.uniform(8, 22, 3), _rot_z(rng.uniform(0, np.pi)) @ _rot_x(rng.uniform(0, np.pi)))
             for c in centers]
    return np.concatenate(parts)


def _assembly(rng):
    core = _ellipsoid(rng, (0, 0, 0), np.array([45, 35, 28]) * rng.uniform(0.85, 1.15, 3),
                      _rot_z(rng.uniform(0, np.pi)) @ _rot_x(rng.uniform(0, np.pi)))
    parts = [core]
    for _ in range(rng.integers(10, 16)):
        d = rng.normal(size=3)
        c = d / np.linalg.norm(d) * rng.uniform(35, 85)
        parts.append(_ellipsoid(rng, c, rng.uniform(10, 26, 3), _rot_z(rng.uniform(0, np.pi)) @ _rot_x(rng.uniform(0, np.pi))))
    return np.concatenate(parts)


def _random_rotation(rng) -> np.ndarray:
    return _rot_z(rng.uniform(0, 2 * np.pi)) @ _rot_x(rng.uniform(0, np.pi)) @ _rot_z(rng.uniform(0, 2 * np.pi))


def _filament(rng):
    n = rng.integers(9, 12)
    z0 = -27.5 * (n - 1) / 2
    parts = []
    for k in range(n):
        a = np.deg2rad(-166.7) * k
        radii = np.array([27, 22, 20]) * rng.uniform(0.92, 1.08, 3)
        parts.append(_ellipsoid(rng, (25 * np.cos(a), 25 * np.sin(a), z0 + 27.5 * k), radii, _rot_z(a)))
    return np.concatenate(parts)


def _ring(rng):
    k, r = rng.integers(8, 13), rng.uniform(65, 80)
    phase = rng.uniform(0, 2 * np.pi)
    return np.concatenate([_ellipsoid(rng, (r * np.cos(a), r * np.sin(a), 0),
                                      np.array([18, 24, 20]) * rng.uniform(0.9, 1.1, 3), _rot_z(a))
                           for a in phase + 2 * np.pi * np.arange(k) / k])


def _rod(rng, a, b, radius):
    """Pseudo-atoms of a cylinder from ``a`` to ``b``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    length = np.linalg.norm(b - a)
    n = max(8, int(np.pi * radius ** 2 * length / ATOM_VOLUME))
    t = rng.random((n, 1))
    u = rng.normal(size=(n, 3))
    axis = (b - a) / length
    u -= (u @ axis)[:, None] * axis
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return a + t * (b - a) + u * radius * np.sqrt(rng.random((n, 1)))


def _dumbbell(rng):
    big, small = rng.uniform(38, 48), rng.uniform(26, 34)
    bend = np.array([rng.uniform(-30, 30), rng.uniform(-30, 30), 0])
    a, b = np.array([0, 0, -85.0]), np.array([0, 0, 95.0])
    return np.concatenate([_ellipsoid(rng, a, big * rng.uniform(0.85, 1.15, 3), _random_rotation(rng)),
                           _ellipsoid(rng, b, small * rng.uniform(0.85, 1.15, 3), _random_rotation(rng)),
                           _rod(rng, a, bend, 10), _rod(rng, bend, b, 10)])


def _tripod(rng):
    parts = [_ellipsoid(rng, (0, 0, 0), np.full(3, 18.0) * rng.uniform(0.9, 1.1, 3))]
    angles = np.cumsum(rng.uniform(95, 145, 3))
    for a in np.deg2rad(angles):
        d = np.array([np.cos(a), np.sin(a), rng.uniform(-0.35, 0.35)])
        d /= np.linalg.norm(d)
        length = rng.uniform(0.85, 1.15)
        side = np.cross(d, [0, 0, 1.0])
        side /= np.linalg.norm(side)
        rot = np.stack([d, side, np.cross(d, side)], 1)  # local x along the arm
        for dist, radii in ((38, (20, 15, 14)), (80, (22, 16, 15))):
            parts.append(_ellipsoid(rng, d * dist * length, np.array(radii) * rng.uniform(0.9, 1.1, 3), rot))
    return np.concatenate(parts)


def _crescent(rng):
    k, r, arc = rng.integers(7, 10), rng.uniform(90, 110), np.deg2rad(rng.uniform(110, 150))
    lift = rng.uniform(15, 30)
    parts = []
    for j, a in enumerate(np.linspace(-arc / 2, arc / 2, k)):
        centre = (r * np.cos(a), r * np.sin(a), lift * (j / (k - 1) - 0.5))
        parts.append(_ellipsoid(rng, centre, np.array([17, 20, 22]) * rng.uniform(0.9, 1.1, 3), _rot_z(a)))
    return np.concatenate(parts)


_BUILDERS = {"proteasome": _proteasome, "ribosome": _ribosome, "ferritin": _ferritin, "multiblob": _multiblob,
             "assembly": _assembly, "filament": _filament, "ring": _ring, "dumbbell": _dumbbell, "tripod": _tripod,
             "crescent": _crescent}


def phantom_model(name: str, seed: int = 0) -> AtomicModel:
    """A pseudo-atomic model of one of :data:`PHANTOMS`."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown phantom {name!r}; choose one of {', '.join(PHANTOMS)}")
    pts = _BUILDERS[name](np.random.default_rng(seed)).astype(np.float32)
    n = len(pts)
    return AtomicModel(pts, ["C"] * n, np.ones(n), np.zeros(n, np.float32), name=name)
