"""The conventions every module of cryoforge follows (cite this module, do not restate it).

Arrays
    Volumes are ``(Z, Y, X)`` arrays, stacks of images ``(N, Y, X)``, batches of volumes
    ``(B, Z, Y, X)`` — the order of the viewer's layers and of mrcfile. The centre of a box of ``n``
    voxels is index ``n // 2`` on each axis (the FFT / RELION convention), so an
    even box has its centre on a voxel, not between two.

Units
    Lengths are in Ångström (Å), voxel size in Å/voxel, spatial frequency in 1/Å,
    angles in degrees at every user-facing boundary, defocus in Å (as in RELION STAR
    files), spherical aberration in mm, voltage in kV.

Vectors and rotations
    Vectors — positions, shifts, rotation axes — are ``(x, y, z)``, the reverse of the
    array axes. A rotation is a 3x3 matrix ``R`` acting on ``(x, y, z)`` column vectors:
    ``p' = R @ p``. *Rotating a volume by R* moves the density at ``p`` (relative to the box
    centre) to ``R @ p``, i.e. ``V'(p) = V(R^T p)``; a rotation about +z by +90° takes a
    feature at +x to +y (array index ``[c, c, c+d]`` to ``[c, c+d, c]``).

    Euler angles appear only at I/O boundaries: ZYZ, RELION's ``(rot, tilt, psi)`` in
    degrees. :func:`euler_zyz_to_matrix` returns RELION's ``A`` matrix
    (``Euler_angles2matrix``), ``A = (Rz(rot) Ry(tilt) Rz(psi))^T`` in active matrices.
    The particle image with those angles is the projection along z of the reference
    rotated by ``A`` (the Fourier slice ``F_img(k) = F_ref(A^T k)``).

CTF sign
    :func:`cryoforge.ctf.ctf_2d` is ``-sin(χ)`` with torch-ctf's phase χ, so ``CTF(0) = +w`` (the amplitude
    contrast): the images this project simulates show density bright at low frequency. cryoDRGN's
    ``compute_ctf`` is exactly the negative (``CTF(0) = -w``; recorded values in
    tests/data/metadata/cryodrgn_parsed.json). cryoDRGN inverts the images by default (``invert_data``) and
    cryoforge does not (``drgn train --invert`` off), so both reconstruct density of the same sign from the
    same real images. The defocus angle is RELION's, from the x axis to the direction of ``DefocusU``.

Tomograms and particle lists
    A particle in a tomogram is at a position in Å from the tomogram's centre (RELION 5's centred coordinates; the
    centre is the point ``size / 2`` of 0-based voxel coordinates) with a rotation as above. How RELION 5, RELION
    3/4, Dynamo and plain ``x y z`` files say it (ZYZ and ZXZ angles, origins, voxel coordinates) is stated in
    :mod:`cryoforge.io.tomo_particles`.

Rotation error
    Reported in degrees (geodesic angle of ``R1^T R2``) and as the Frobenius norm
    ``||R1 - R2||_F`` used by the Gum-Net paper; ``||R1 - R2||_F = 2 sqrt(2) sin(θ/2)``.

Randomness
    Every random function takes an explicit ``seed``; the same seed gives the same result on CPU.

Names
    One name per quantity, spelled one way (British: *centred*). ``voxel_size`` is a volume's sampling in Å,
    ``pixel_size`` an image's (a particle stack's, a tilt image's); keys of JSON reports add the unit
    (``voxel_size_A``, ``pixel_size_A``, ``defocus_u_A``), since JSON carries none. ``box`` is a cubic volume's
    edge in voxels. ``kind`` names which model a checkpoint or manifold holds ('gumnet', 'wgan3d', 'cryodrgn', …)
    and nothing else: how an MRC file's data are laid out is its ``layout`` (volume, stack), how a job's preview is
    shown its ``view`` (volume, image, stack, curve), how a latent path is drawn its ``method`` (linear,
    spherical, graph).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    pass
    from .hints import ArrayLike


ARRAY_AXES = ("z", "y", "x")
STACK_AXES = ("n", "y", "x")
VECTOR_AXES = ("x", "y", "z")
LENGTH_UNIT = "Å"


def box_centre(n: int) -> int:
    """Index of the centre voxel of a box of ``n`` voxels along one axis."""
    return n // 2


def as_tensor(x: ArrayLike, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` as a tensor (no copy when possible): float64 arrays stay float64, other inputs become float32 unless ``dtype`` is given."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    arr = np.asarray(x)
    if dtype is None:
        dtype = torch.float64 if arr.dtype == np.float64 else torch.float32
    if not arr.flags.writeable:  # e.g. a pandas column: torch would share a read-only buffer
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=dtype)


def _rz(a: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(a), torch.sin(a)
    z, o = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def _ry(a: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(a), torch.sin(a)
    z, o = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def rotation_about_axis(axis: ArrayLike, angle_deg: ArrayLike) -> torch.Tensor:
    """Active rotation by ``angle_deg`` (right hand) about the ``(x, y, z)`` ``axis``."""
    u = as_tensor(axis)
    u = u / torch.linalg.norm(u, dim=-1, keepdim=True)
    a = torch.deg2rad(as_tensor(angle_deg, u.dtype))
    x, y, z = u.unbind(-1)
    c, s, t = torch.cos(a), torch.sin(a), 1 - torch.cos(a)
    rows = [
        t * x * x + c, t * x * y - s * z, t * x * z + s * y,
        t * x * y + s * z, t * y * y + c, t * y * z - s * x,
        t * x * z - s * y, t * y * z + s * x, t * z * z + c,
    ]
    return torch.stack(torch.broadcast_tensors(*rows), -1).reshape(*torch.broadcast_shapes(x.shape, a.shape), 3, 3)


def euler_zyz_to_matrix(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> torch.Tensor:
    """RELION ``(rot, tilt, psi)`` in degrees → rotation matrices ``(..., 3, 3)`` (module doc)."""
    r, t, p = torch.broadcast_tensors(*(torch.deg2rad(as_tensor(v)) for v in (rot, tilt, psi)))
    return (_rz(r) @ _ry(t) @ _rz(p)).transpose(-1, -2)


def matrix_to_euler_zyz(matrix: ArrayLike) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` → RELION ``(rot, tilt, psi)`` in degrees, ``(..., 3)``.

    ``tilt`` is in ``[0, 180]``; at the gimbal lock (tilt 0 or 180) ``rot`` is set to 0.
    """
    a = as_tensor(matrix)
    sin_tilt = torch.sqrt(a[..., 2, 0] ** 2 + a[..., 2, 1] ** 2)
    tilt = torch.atan2(sin_tilt, a[..., 2, 2])
    tiny = 1e-10 if a.dtype == torch.float64 else 1e-5
    rot = torch.where(sin_tilt > tiny, torch.atan2(a[..., 2, 1], a[..., 2, 0]), torch.zeros_like(tilt))
    # A00 + A11 = (1 + cos tilt) cos(rot + psi), A01 - A10 = (1 + cos tilt) sin(rot + psi);
    # A11 - A00 = (1 - cos tilt) cos(rot - psi), -(A01 + A10) = (1 - cos tilt) sin(rot - psi).
    # Each pair is well conditioned on its own hemisphere, so psi stays exact near the gimbal lock.
    rot_plus_psi = torch.atan2(a[..., 0, 1] - a[..., 1, 0], a[..., 0, 0] + a[..., 1, 1])
    rot_minus_psi = torch.atan2(-(a[..., 0, 1] + a[..., 1, 0]), a[..., 1, 1] - a[..., 0, 0])
    psi = torch.where(a[..., 2, 2] >= 0, rot_plus_psi - rot, rot - rot_minus_psi)
    psi = torch.remainder(psi + math.pi, 2 * math.pi) - math.pi
    return torch.rad2deg(torch.stack([rot, tilt, psi], -1))


def random_rotations(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` rotation matrices drawn uniformly from SO(3) (Haar measure), reproducibly from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    return quaternion_to_matrix(q).to(dtype)


def quaternion_to_matrix(q: ArrayLike) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` as ``(w, x, y, z)`` → active rotation matrices ``(..., 3, 3)``."""
    q = as_tensor(q)
    w, x, y, z = q.unbind(-1)
    m = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(m, -1).reshape(*q.shape[:-1], 3, 3)


def rotation_angle_deg(r1: ArrayLike, r2: ArrayLike) -> torch.Tensor:
    """Geodesic distance between rotations in degrees: the angle of ``r1^T r2``."""
    r1, r2 = as_tensor(r1), as_tensor(r2)
    trace = torch.einsum("...ij,...ij->...", r1, r2)  # tr(r1^T r2)
    cos = ((trace - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def rotation_frobenius(r1: ArrayLike, r2: ArrayLike) -> torch.Tensor:
    """Frobenius norm ``||r1 - r2||_F`` (the Gum-Net paper's rotation error)."""
    r1, r2 = as_tensor(r1), as_tensor(r2)
    return torch.linalg.norm((r1 - r2).flatten(-2), dim=-1)


def frobenius_from_angle(angle_deg: float) -> float:
    """``||R1 - R2||_F`` for two rotations ``angle_deg`` apart."""
    return 2 * math.sqrt(2) * math.sin(math.radians(angle_deg) / 2)


def is_rotation(matrix: ArrayLike, atol: float = 1e-5) -> bool:
    """True when every matrix in ``matrix`` is orthonormal with determinant +1."""
    m = as_tensor(matrix, torch.float64)
    eye = torch.eye(3, dtype=m.dtype).expand_as(m)
    return bool(
        torch.allclose(m.transpose(-1, -2) @ m, eye, atol=atol)
        and torch.allclose(torch.linalg.det(m), torch.ones((), dtype=m.dtype), atol=atol)
    )
