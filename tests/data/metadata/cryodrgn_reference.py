"""Records cryoDRGN 4.3.1's own reading of this folder's files as cryodrgn_parsed.json.

Run in a venv with cryoDRGN (not a project dependency), from this folder:
    pip install torch==2.13.0 cryodrgn==4.3.1 && python cryodrgn_reference.py
It runs cryoDRGN's commands (parse_ctf_star, parse_pose_star, parse_ctf_csparc, parse_pose_csparc), reads the
pickles they write, and evaluates cryodrgn.ctf.compute_ctf on a 16² grid for a few parameter sets.
"""

import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from cryodrgn import __version__
from cryodrgn.ctf import compute_ctf

HERE = Path(__file__).resolve().parent
RUNS = {  # file -> (command, extra arguments) ; the RELION 3.0 file has no rlnImagePixelSize: cryoDRGN needs --Apix
    "relion30_sta.star": [("parse_ctf_star", ["--Apix", "1.31", "-D", "16"]),
                          ("parse_pose_star", ["--Apix", "1.31", "-D", "16"])],
    "relion31_optics6.star": [("parse_ctf_star", []), ("parse_pose_star", [])],
    "cryosparc_small.cs": [("parse_ctf_csparc", []), ("parse_pose_csparc", [])],
}
CTF_CASES = [  # dfu, dfv, dfang, kV, Cs, w, phase shift°, Å/px
    (15000.0, 15000.0, 0.0, 300.0, 2.7, 0.1, 0.0, 1.0),
    (20000.0, 16000.0, 30.0, 300.0, 2.7, 0.07, 0.0, 1.3),
    (16000.0, 20000.0, -60.0, 200.0, 2.0, 0.1, 20.0, 2.0),  # U < V
]


def main() -> None:
    out = {"what": "cryoDRGN's parsed values of this folder's metadata files, and its CTF",
           "command": "python tests/data/metadata/cryodrgn_reference.py (cryodrgn " + __version__
                      + " from PyPI, torch 2.13.0 CPU)", "files": {}, "ctf": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, runs in RUNS.items():
            rec = {}
            for cmd, extra in runs:
                pkl = Path(tmp) / f"{name}.{cmd}.pkl"
                args = [str(Path(sys.executable).parent / "cryodrgn"), cmd, str(HERE / name)]
                args += ["-o", str(pkl)] + extra
                done = subprocess.run(args, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{cmd} {name}: {done.stderr[-2000:]}")
                with open(pkl, "rb") as fh:
                    obj = pickle.load(fh)
                if cmd.startswith("parse_ctf"):
                    rec["ctf"] = np.asarray(obj, np.float64).tolist()  # D, Apix, dfu, dfv, dfang, kV, Cs, w, phase
                else:
                    rec["rot"] = np.asarray(obj[0], np.float64).tolist()
                    rec["trans_fraction"] = np.asarray(obj[1], np.float64).tolist()
            out["files"][name] = rec
    n = 16
    for dfu, dfv, ang, kv, cs, w, ps, apix in CTF_CASES:
        fy, fx = np.meshgrid(np.fft.fftfreq(n, apix), np.fft.rfftfreq(n, apix), indexing="ij")
        freqs = torch.tensor(np.stack([fx, fy], -1).reshape(-1, 2), dtype=torch.float64)
        t = [torch.tensor(v, dtype=torch.float64) for v in (dfu, dfv, ang, kv, cs, w, ps)]
        c = compute_ctf(freqs, *t).reshape(n, n // 2 + 1)
        out["ctf"].append({"params": [dfu, dfv, ang, kv, cs, w, ps], "apix": apix, "grid": "rfft (Y, X//2+1)",
                           "values": c.numpy().tolist()})
    (HERE / "cryodrgn_parsed.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
