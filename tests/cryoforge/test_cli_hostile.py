"""The hostile-input sweep (issue 23): every case is a command a careless or hostile user could type, on bad files
made here in a temporary folder. Each must end as one clear line on stderr with exit status 2 — no traceback, no
hang, no runaway allocation, no output written, no code run. ``test_sweep_figures`` adds the outcomes up into the
table of the closing note (cases, clean errors, tracebacks, hangs, runaway allocations, silent wrong outputs,
partial outputs, code run) and requires zeros in every column but the first two.

Work lost to Ctrl-C, SIGTERM, rewrites and concurrent writers is tested in tests/cryoforge/jobs/test_trainer.py and
tests/cryoforge/io/test_atomic.py; bad files opened in napari in tests/napari_cryoforge/test_reader.py."""

import io
import json
import os
import pickle
import resource
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from cryoforge.cli import main
from cryoforge.io.mrc import write_mrc

RESULTS: dict[str, dict] = {}


HANG_S = 30.0


RUNAWAY_KIB = 1 << 20  # 1 GiB more peak memory than before the case


class Payload:
    """Unpickling it would run code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """The bad files of the sweep, and one good small dataset to break."""
    d = tmp_path_factory.mktemp("bad")
    marker = d / "CODE_WAS_RUN"
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(32, 32, 32)).astype(np.float32)
    _quiet(write_mrc, d / "good.mrc", vol, 12.0)
    nan = vol.copy()
    nan[3, 4, 5] = np.nan
    _quiet(write_mrc, d / "nan.mrc", nan, 12.0)
    nan2 = vol.copy()
    nan2[1, 1, 1] = nan2[9, 9, 9] = np.nan
    _quiet(write_mrc, d / "nan2.mrc", nan2, 12.0)
    _quiet(write_mrc, d / "nan_templates.mrc", np.stack([nan, vol]), 12.0)
    with mrcfile.new(d / "complex.mrc") as m:
        m.set_data(np.ones((4, 4, 4), np.complex64))
    torch.save({"w": torch.zeros(1000)}, d / "gumnet_renamed.mrc")
    (d / "text.mrc").write_text("my notes\n" * 200)
    raw = (d / "good.mrc").read_bytes()
    (d / "truncated.mrc").write_bytes(raw[:5000])
    # pickles
    with open(d / "evil.pkl", "wb") as fh:
        pickle.dump(Payload(marker), fh)
    with open(d / "dict_poses.pkl", "wb") as fh:
        pickle.dump({"rot": np.eye(3)}, fh)
    good = pickle.dumps((np.tile(np.eye(3, dtype=np.float32), (4, 1, 1)), np.zeros((4, 2), np.float32)))
    (d / "truncated_poses.pkl").write_bytes(good[: len(good) // 2])
    (d / "empty.pkl").write_bytes(b"")
    bomb = [0.0] * 8
    for _ in range(30):
        bomb = [bomb, bomb]
    with open(d / "z_bomb.pkl", "wb") as fh:
        pickle.dump(bomb, fh)
    (d / "empty_z.txt").write_text("")
    np.savetxt(d / "z4.txt", np.zeros((2, 4)))
    np.savez(d / "arch.npz", x=np.zeros(3))
    (d / "arch.cs").write_bytes((d / "arch.npz").read_bytes())
    # checkpoints and configs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"format": "cryoforge-checkpoint", "format_version": 1, "kind": "wgan3d", "obj": Payload(marker)},
                   d / "evil.pt")
        torch.save({"model_state_dict": {}, "x": Payload(marker)}, d / "evil_weights.pkl")
    for kind in ("wgan3d", "multicryogan", "wgan3d_regressor"):
        torch.save({"format": "cryoforge-checkpoint", "format_version": 1, "kind": kind, "config": {},
                    "state_dicts": {}, "metrics": {}, "extra": {}}, d / f"empty_{kind}.pt")
    (d / "evil.yaml").write_text(f"model_args: !!python/object/apply:pathlib.Path.touch ['{marker}']\n"
                                 "lattice_args: {D: 65}\n")
    (d / "a_file").write_text("x")
    (d / "out_dir").mkdir()
    # STAR files
    optics = ("data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n_rlnVoltage\n_rlnSphericalAberration\n"
              "_rlnAmplitudeContrast\n1 1.5 300 2.7 0.1\n\n")
    parts = ("data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n_rlnDefocusU\n_rlnDefocusV\n"
             "_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n")
    _quiet(write_mrc, d / "stack.mrcs", rng.normal(size=(4, 16, 16)), 1.5)
    (d / "bad_group.star").write_text(optics + parts + "".join(
        f"{i + 1}@stack.mrcs {1 if i else 3} 15000 14000 0 0 0\n" for i in range(4)))
    (d / "nan_defocus.star").write_text(optics + parts + "".join(
        f"{i + 1}@stack.mrcs 1 {'nan' if i == 2 else 15000} 14000 0 0 0\n" for i in range(4)))
    (d / "nan_angle.star").write_text(optics + parts + "".join(
        f"{i + 1}@stack.mrcs 1 15000 14000 0 {'nan' if i == 1 else 10} 0\n" for i in range(4)))
    (d / "past_end.star").write_text(optics + parts + "".join(
        f"{i + 2}@stack.mrcs 1 15000 14000 0 0 0\n" for i in range(4)))
    # a pair dataset, then broken copies of it
    ds = d / "ds"
    assert _quiet(main, ["simulate", "subtomos", "phantom:assembly", "--out", str(ds), "--n-pairs", "3", "--box",
                         "16", "--voxel-size", "24"]) == 0
    for name, breaker in (("ds_nan", "nan"), ("ds_short_truth", "truth"), ("ds_empty_json", "json")):
        import shutil

        shutil.copytree(ds, d / name)
        if breaker == "nan":
            with mrcfile.open(d / name / "subtomos_b.mrc", mode="r+") as m:
                m.data[1, 3, 4, 5] = np.nan
        elif breaker == "truth":
            import starfile

            t = starfile.read(d / name / "truth.star", always_dict=True)["pairs"]
            starfile.write({"pairs": t.iloc[:2]}, d / name / "truth.star", overwrite=True)
        else:
            (d / name / "dataset.json").write_text("{}")
    (d / "particles_folder").mkdir()
    _quiet(write_mrc, d / "particles_folder" / "particles.mrcs", rng.normal(size=(4, 16, 16)), 1.5)
    return d


def cases():
    """(id, category, argv) — argv items may use {d} for the bad-files folder."""
    c = []

    def add(cat, *argv, expect):
        c.append((f"{len(c) + 1:02d} {cat}: {' '.join(a.replace('{d}/', '') for a in argv)}", cat, list(argv),
                  expect))

    ws = "wrong science"
    add(ws, "hyptest", "test", "{d}/nan.mrc", "--n-pseudo", "9", expect='nan.mrc: 1 NaN or infinite values')
    add(ws, "hyptest", "test", "{d}/good.mrc", "--n-pseudo", "9", "--defocus", "nan",
        expect='--defocus: must be a finite number')
    add(ws, "hyptest", "test", "{d}/good.mrc", "--templates", "{d}/nan_templates.mrc",
        expect='nan_templates.mrc: 1 NaN')
    add(ws, "simulate", "map", "{d}/nan2.mrc", "--out", "{d}/out_dir/m.mrc", expect='nan2.mrc: 2 NaN')
    add(ws, "simulate", "subtomos", "phantom:assembly", "--cs", "nan", "--out", "{d}/out_dir/x",
        expect='--cs: must be a finite number')
    add(ws, "simulate", "particles", "phantom:multiblob", "--ctf-bfactor", "nan", "--out", "{d}/out_dir/x",
        expect='--ctf-bfactor: must be a finite number')
    add(ws, "sample", "{d}/out_dir/s", "--snr", "-1", expect='--snr: must be > 0')
    add(ws, "sample", "{d}/out_dir/s", "--size", "0", expect='--size: must be > 0 voxels')
    add(ws, "align", "train", "--maps", "{d}/nan.mrc", "--checkpoint", "{d}/out_dir/g.pt", expect='nan.mrc: 1 NaN')
    add(ws, "align", "run", "{d}/ds_nan", expect='subtomos_b.mrc: 1 NaN')
    add(ws, "fsc", "{d}/good.mrc", "{d}/good.mrc", "--voxel-size", "-2", expect='--voxel-size: must be > 0 Å')
    add(ws, "fsc", "{d}/good.mrc", "{d}/good.mrc", "--mask-radius", "-5", expect='--mask-radius: must be > 0 Å')
    add(ws, "fsc", "{d}/nan.mrc", "{d}/good.mrc", expect='nan.mrc: 1 NaN')
    add(ws, "align", "average", "{d}/ds", "--lowpass", "-10", "--out", "{d}/out_dir/avg",
        expect='--lowpass: must be ≥ 0 Å')
    add(ws, "align", "run", "{d}/ds", "--limit", "-1", expect='--limit: must be > 0 pairs')
    add(ws, "simulate", "map", "phantom:ribosome", "--voxel-size", "nan", "--out", "{d}/out_dir/m.mrc",
        expect='--voxel-size: must be a finite number')
    add(ws, "simulate", "map", "phantom:ribosome", "--voxel-size", "-1", "--out", "{d}/out_dir/m.mrc",
        expect='--voxel-size: must be > 0 Å')
    add(ws, "info", "{d}/complex.mrc", expect='complex data (mode 4)')
    add(ws, "mcgan", "train", "{d}/stack.mrcs", "--size", "0", "--checkpoint", "{d}/out_dir/m.pt",
        expect='--size: must be > 0 px')
    add(ws, "drgn", "train", "{d}/stack.mrcs", "--dim", "0", "--checkpoint", "{d}/out_dir/m.pt",
        expect='--dim: must be > 0')
    add(ws, "drgn", "train", "{d}/stack.mrcs", "--pose-search", "--no-ctf", "--l-start", "12", "--l-end", "4",
        "--checkpoint", "{d}/out_dir/m.pt", expect='--l-end 4 is below --l-start 12')
    add(ws, "metadata", "{d}/bad_group.star", expect='optics group(s) [3], which the optics table does not define')
    add(ws, "metadata", "{d}/past_end.star", expect='points to image 5 of stack.mrcs, which holds 4')
    add(ws, "drgn", "train", "{d}/stack.mrcs", "--poses", "{d}/past_end.star", "--checkpoint", "{d}/out_dir/m.pt",
        expect='points to image 5 of stack.mrcs, which holds 4')

    add(ws, "drgn", "train", "{d}/stack.mrcs", "--poses", "{d}/nan_defocus.star", "--checkpoint", "{d}/out_dir/m.pt",
        expect="NaN or infinite values in CTF defocus_u (row 3, 1 rows)")
    add(ws, "mcgan", "train", "{d}/stack.mrcs", "--star", "{d}/nan_defocus.star", "--checkpoint", "{d}/out_dir/m.pt",
        expect="NaN or infinite values in CTF defocus_u (row 3, 1 rows)")
    add(ws, "drgn", "train", "{d}/stack.mrcs", "--poses", "{d}/nan_angle.star", "--checkpoint", "{d}/out_dir/m.pt",
        expect="NaN or infinite values in rotation (row 2, 1 rows)")

    dos = "denial of service"
    add(dos, "metadata", "{d}/z_bomb.pkl", "--box", "16", expect='the same container appears twice')
    add(dos, "movie", "analytic", "--from", "0", "--to", "1", "--frames", "100000000", "--out", "{d}/out_dir/m.gif",
        expect='100000000 frames of 32³ needs about')
    add(dos, "movie", "analytic:100000000", "--from", "0", "--to", "1", "--out", "{d}/out_dir/m.gif",
        expect='1 ≤ latent_dim ≤ 64')
    add(dos, "simulate", "particles", "phantom:multiblob", "-n", "100000000", "--box", "48", "--voxel-size", "4",
        "--out", "{d}/out_dir/p", expect='100000000 particle images of 48² px needs about')
    add(dos, "simulate", "subtomos", "phantom:assembly", "--tilt-step", "0.001", "--out", "{d}/out_dir/p",
        expect='180000 tilts per subtomogram needs about')
    add(dos, "simulate", "map", "phantom:ribosome", "--box", "4096", "--out", "{d}/out_dir/m.mrc",
        expect='a 4096³ map sampled 2× finer needs about')

    tb = "tracebacks"
    add(tb, "metadata", "{d}/evil.pkl", "--box", "16", expect='refusing to load pathlib.Path.touch')
    add(tb, "drgn", "eval", "{d}/evil_weights.pkl", "-c", "{d}/evil.yaml", "-o", "{d}/out_dir/v.mrc",
        expect='not a plain YAML cryoDRGN config')
    add(tb, "movie", "{d}/evil.pt", "--from", "0", "--to", "1", "--out", "{d}/out_dir/m.gif", expect='asks to build')
    add(tb, "fsc", "{d}/good.mrc", "{d}/good.mrc", "--json", "{d}/out_dir", expect='is a folder; give a file name')
    add(tb, "align", "run", "{d}/ds", "--out", "{d}/out_dir", expect='is a folder; give a file name')
    add(tb, "align", "average", "{d}/ds", "--out", "{d}/a_file", expect='is a file; give a folder')
    add(tb, "drgn", "eval", "analytic:4", "--zfile", "{d}/z4.txt", "-o", "{d}/a_file",
        expect='a_file is a file, not a folder')
    add(tb, "movie", "{d}/empty_wgan3d.pt", "--from", "0", "--to", "1", "--out", "{d}/out_dir/m.gif",
        expect='its config has no')
    add(tb, "mcgan", "eval", "{d}/empty_multicryogan.pt", "--out", "{d}/out_dir/e",
        expect="its config has no 'architecture' section")
    add(tb, "hyptest", "test", "{d}/good.mrc", "--model", "{d}/empty_wgan3d_regressor.pt", "--n-pseudo", "9",
        expect='its config has no')
    add(tb, "metadata", "{d}/truncated_poses.pkl", "--box", "16", expect='truncated_poses.pkl: not a readable pickle')
    add(tb, "metadata", "{d}/empty.pkl", "--box", "16", expect='empty.pkl: empty pickle file')
    add(tb, "metadata", "{d}/dict_poses.pkl", "--box", "16", expect='found dict')
    add(tb, "metadata", "{d}/arch.cs", expect='it is a numpy archive (.npz)')
    add(tb, "drgn", "eval", "analytic:4", "--zfile", "{d}/empty_z.txt", "-o", "{d}/out_dir/v",
        expect='empty_z.txt: no latent points')
    add(tb, "info", "{d}/gumnet_renamed.mrc", expect='its header gives sizes')
    add(tb, "info", "{d}/text.mrc", expect='its header names no MRC data mode')
    add(tb, "info", "{d}/truncated.mrc", expect='truncated (an incomplete copy')

    ue = "unclear errors"
    add(ue, "align", "run", "{d}/ds", "--rotations", "0", expect='--rotations: must be > 0')
    add(ue, "align", "run", "{d}/ds", "--candidates", "0", expect='--candidates: must be > 0')
    add(ue, "movie", "analytic", "--from", "0", "--to", "1", "--fps", "0", "--out", "{d}/out_dir/m.gif",
        expect='--fps: must be > 0')
    add(ue, "align", "run", "{d}/ds", "--limit", "0", expect='--limit: must be > 0 pairs')
    add(ue, "align", "run", "{d}/ds_empty_json", expect='dataset.json names no structures')
    add(ue, "align", "run", "{d}/ds_short_truth",
        expect='an incomplete or mixed dataset: subtomos_a.mrc 3, subtomos_b.mrc 3, truth.star 2')
    add(ue, "info", "{d}/out_dir", expect='is a folder, not an MRC file')
    add(ue, "align", "run", "{d}/particles_folder",
        expect='it holds a particle stack (particles.mrcs), not subtomogram pairs')
    add(ue, "drgn", "eval", "analytic:8", "--zfile", "{d}/z4.txt", "-o", "{d}/out_dir/v",
        expect="4 numbers per line, but the model's latent space has 8 dimensions")
    return c


def generated_cases():
    """Every typed option of every command, given what it must refuse: NaN and ±inf for floats, 0 and -1 where a
    count or length must be positive, -1 where it must be ≥ 0, and text for integers. The command's other required
    arguments get placeholders: the bad number must stop it while its arguments are parsed, before any work."""
    import argparse

    from cryoforge.cli import build_parser

    out = []

    def walk_cmd(parser, prefix):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, sp in subs[0].choices.items():
                walk_cmd(sp, prefix + [name])
            return
        required = []
        for a in parser._actions:
            if not a.option_strings and a.dest != "help":
                n = 1 if a.nargs in (None, "+") else (a.nargs if isinstance(a.nargs, int) else 0)
                required += [str(a.choices[0]) if a.choices else "x"] * n
        for a in parser._actions:
            if a.option_strings and a.required:
                required += [a.option_strings[0], "x"]
        for a in parser._actions:
            if not a.option_strings or a.type is None:
                continue
            name = getattr(a.type, "__name__", "")
            bad = []
            if name.endswith("float") or a.type is float:
                bad += [("nan", "must be a finite number"), ("inf", "must be a finite number"),
                        ("-inf", "must be a finite number")]
            if name.startswith("positive"):
                bad += [("0", "must be > 0"), ("-1", "must be > 0")]
            elif name.startswith("non-negative"):
                bad += [("-1", "must be ≥ 0")]
            if a.type is int:
                bad += [("abc", "invalid int value")]
            k = a.nargs if isinstance(a.nargs, int) else 1
            for value, expect in bad:
                if value == "-inf" and k > 1:
                    continue  # argparse reads "-inf" as an option name; "--opt=-inf" needs a single value
                opt = a.option_strings[-1]
                argv = prefix + required + ([f"{opt}={value}"] if value == "-inf" else [opt] + [value] * k)
                out.append((f"{len(out) + 1:03d} generated: {' '.join(prefix)} {a.option_strings[-1]} {value}",
                            "numbers at the boundary (generated)", argv, expect))

    walk_cmd(build_parser(), [])
    return out


CASES = cases() + generated_cases()


def _snapshot(d: Path) -> set:
    return {p for p in d.rglob("*")}


@pytest.mark.parametrize("case_id, category, argv, expect", CASES, ids=[c[0] for c in CASES])
def test_case(case_id, category, argv, expect, bad, monkeypatch):
    monkeypatch.chdir(bad / "out_dir")  # placeholders name files here: nothing may appear
    args = [a.format(d=bad) for a in argv]
    before = _snapshot(bad)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err, out = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with redirect_stderr(err), redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(args)
        except BaseException as exc:  # noqa: BLE001 - an escaping exception is a traceback
            code = f"raised {type(exc).__name__}"
    seconds = time.perf_counter() - t0
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip() and "warning:" not in line]
    row = {
        "category": category, "code": code, "seconds": round(seconds, 2), "stderr": text.strip()[-300:],
        "clean": code == 2 and len(lines) == 1 and "Traceback" not in text and expect in text,
        "traceback": isinstance(code, str) or "Traceback" in text or code == 1,
        "hang": seconds > HANG_S,
        "runaway": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 > RUNAWAY_KIB,
        "silent": code == 0,
        "partial_output": bool(_snapshot(bad) - before),
        "code_run": (bad / "CODE_WAS_RUN").exists(),
    }
    RESULTS[case_id] = row
    assert row["clean"], (args, row)
    assert not any(row[k] for k in ("hang", "runaway", "silent", "partial_output", "code_run")), (args, row)


def test_sweep_figures(capsys):
    assert len(RESULTS) == len(CASES), "run the whole module: the figures add up every case"
    keys = ("clean", "traceback", "hang", "runaway", "silent", "partial_output", "code_run")
    table = {k: sum(bool(r[k]) for r in RESULTS.values()) for k in keys}
    table = {"cases": len(RESULTS), **table}
    by_cat = {}
    for r in RESULTS.values():
        by_cat[r["category"]] = by_cat.get(r["category"], 0) + 1
    with capsys.disabled():
        print("\nhostile-input sweep:", json.dumps(table), json.dumps(by_cat))
    if os.environ.get("CRYOFORGE_SWEEP_JSON"):  # every case's command, exit status and message
        Path(os.environ["CRYOFORGE_SWEEP_JSON"]).write_text(json.dumps(
            {"figures": table, "categories": by_cat, "cases": RESULTS}, indent=1, default=str))
    assert table["clean"] == table["cases"]
    assert all(table[k] == 0 for k in keys[1:])
