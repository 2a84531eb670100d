"""Writes the small metadata files of this folder (run from the repo root: python tests/data/metadata/make_files.py).

Each file reproduces one real-file trait that the project once read wrongly (issue 22):
- relion30_sta.star: RELION 3.0 subtomogram-averaging style, one table; 4 of 12 rows with DefocusU < DefocusV,
  rlnCtfBfactor −13 … −507 Å², rlnCtfScalefactor < 1, rlnDetectorPixelSize 5 µm at magnification 38 168
  (1.31 Å), origins in pixels.
- relion31_optics6.star: RELION 3.1, 6 optics groups (1.24 / 1.25 Å, Cs 2.6 / 2.7 mm, 300 / 200 kV).
- cryosparc_small.cs: a cryoSPARC record array with blob, ctf and alignments3D fields.
- the .mrcs stacks the STAR files name (16² px).
"""

from pathlib import Path

import mrcfile
import numpy as np

HERE = Path(__file__).resolve().parent


def stack(name: str, n: int, voxel: float, seed: int) -> None:
    data = np.random.default_rng(seed).normal(size=(n, 16, 16)).astype(np.float32)
    with mrcfile.new(HERE / name, overwrite=True) as m:
        m.set_data(data)
        m.set_image_stack()
        m.voxel_size = voxel


def relion30() -> None:
    rng = np.random.default_rng(30)
    n = 12
    du = rng.uniform(18000, 32000, n)
    dv = du - rng.uniform(50, 600, n)
    swap = np.array([1, 4, 7, 10])
    du[swap], dv[swap] = dv[swap], du[swap]  # DefocusU < DefocusV, as 21 / 219 rows of a real STA file
    b = np.linspace(-13, -507, n)
    rows = []
    for i in range(n):
        rot, tilt, psi = rng.uniform(-180, 180), rng.uniform(0, 180), rng.uniform(-180, 180)
        rows.append(f"{i + 1:06d}@relion30_sta.mrcs {du[i]:.2f} {dv[i]:.2f} {rng.uniform(-90, 90):.2f} 300 2.7 0.07 "
                    f"{b[i]:.1f} {1 - 0.02 * i:.2f} 5.0 38168 {rot:.3f} {tilt:.3f} {psi:.3f} "
                    f"{rng.uniform(-3, 3):.3f} {rng.uniform(-3, 3):.3f}")
    cols = ["rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage", "rlnSphericalAberration",
            "rlnAmplitudeContrast", "rlnCtfBfactor", "rlnCtfScalefactor", "rlnDetectorPixelSize", "rlnMagnification",
            "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginX", "rlnOriginY"]
    text = "\ndata_\n\nloop_\n" + "".join(f"_{c} #{k + 1}\n" for k, c in enumerate(cols)) + "\n".join(rows) + "\n"
    (HERE / "relion30_sta.star").write_text(text)
    stack("relion30_sta.mrcs", n, 5.0 * 1e4 / 38168, 1)


def relion31_optics6() -> None:
    rng = np.random.default_rng(31)
    groups = [(1, 1.24, 2.7, 300), (2, 1.25, 2.7, 300), (3, 1.24, 2.6, 300), (4, 1.25, 2.6, 300),
              (5, 1.24, 2.7, 200), (6, 1.25, 2.6, 200)]
    optics = "".join(f"{g} opticsGroup{g} 0.1 {cs} {kv} {px} 16 2\n" for g, px, cs, kv in groups)
    n = 18
    rows = []
    for i in range(n):
        g = 1 + (i * 5) % 6
        du = rng.uniform(8000, 25000)
        rows.append(f"{i + 1:06d}@relion31_optics6.mrcs {g} {du:.2f} {du - rng.uniform(0, 400):.2f} "
                    f"{rng.uniform(-180, 180):.2f} 0.0 {rng.uniform(-180, 180):.3f} {rng.uniform(0, 180):.3f} "
                    f"{rng.uniform(-180, 180):.3f} {rng.uniform(-4, 4):.4f} {rng.uniform(-4, 4):.4f}")
    text = ("\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n"
            "_rlnAmplitudeContrast #3\n_rlnSphericalAberration #4\n_rlnVoltage #5\n_rlnImagePixelSize #6\n"
            "_rlnImageSize #7\n_rlnImageDimensionality #8\n" + optics +
            "\n\n# version 30001\n\ndata_particles\n\nloop_\n_rlnImageName #1\n_rlnOpticsGroup #2\n_rlnDefocusU #3\n"
            "_rlnDefocusV #4\n_rlnDefocusAngle #5\n_rlnPhaseShift #6\n_rlnAngleRot #7\n_rlnAngleTilt #8\n"
            "_rlnAnglePsi #9\n_rlnOriginXAngst #10\n_rlnOriginYAngst #11\n" + "\n".join(rows) + "\n")
    (HERE / "relion31_optics6.star").write_text(text)
    stack("relion31_optics6.mrcs", n, 1.24, 2)


def cryosparc() -> None:
    rng = np.random.default_rng(5)
    n = 10
    dt = np.dtype([("uid", "<u8"), ("blob/path", "S40"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)),
                   ("blob/psize_A", "<f4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"),
                   ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"),
                   ("ctf/phase_shift_rad", "<f4"), ("ctf/scale", "<f4"), ("alignments3D/shift", "<f4", (2,)),
                   ("alignments3D/pose", "<f4", (3,))])
    a = np.zeros(n, dt)
    a["uid"] = np.arange(n) + 1000
    a["blob/path"] = b"J1/imported/particles.mrcs"
    a["blob/idx"] = np.arange(n)
    a["blob/shape"] = 16
    a["blob/psize_A"] = 1.06
    a["ctf/accel_kv"], a["ctf/cs_mm"], a["ctf/amp_contrast"] = 300, 2.7, 0.1
    a["ctf/df1_A"] = rng.uniform(9000, 21000, n)
    a["ctf/df2_A"] = a["ctf/df1_A"] + rng.uniform(-500, 500, n)  # cryoSPARC does not order df1, df2
    a["ctf/df_angle_rad"] = rng.uniform(-np.pi, np.pi, n)
    a["ctf/phase_shift_rad"] = rng.uniform(0, 0.5, n)
    a["ctf/scale"] = 1.0
    a["alignments3D/shift"] = rng.uniform(-3, 3, (n, 2))
    a["alignments3D/pose"] = rng.normal(size=(n, 3))
    with open(HERE / "cryosparc_small.cs", "wb") as fh:  # np.save on a name would append .npy
        np.save(fh, a)


if __name__ == "__main__":
    relion30()
    relion31_optics6()
    cryosparc()
