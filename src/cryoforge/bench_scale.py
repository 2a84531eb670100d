"""``cryoforge bench scale``: one process against several under ``torchrun``, on this machine.

Every run is ``python -m torch.distributed.run --nproc-per-node K -m cryoforge.cli …`` with ``threads`` torch threads per
process (``OMP_NUM_THREADS``), as a user would start it. Measured per ``K`` in ``processes``:

- **Gum-Net training** (``align train``): simulated pairs per second over the steps after the first report (start-up
  and the final validation left out), from the checkpoint's history;
- **cryoDRGN training** (``drgn train``, known poses, CTF) on a simulated stack of ``stack_images`` images of 64²
  stored as float16 (``stack_box``) and read by memory map: images per second the same way, and the peak resident memory of each
  process (``VmHWM``) and of all of them together;
- **pair alignment** (``align run``, classical search) of the shipped pair dataset: pairs per second as the command
  reports it, and whether the STAR file equals one process's;
- **volume decoding** (``drgn eval --zfile``) of ``eval_points`` latent points with the model trained above: volumes
  per second, and whether the maps equal one process's;
- **subtomogram averaging** (``align average``, reference-free) of the first ``average_subtomograms`` subtomograms of
  the shipped pair dataset, one global and one local iteration: subtomograms aligned per second over the
  iterations' own time (``average.json``), and whether the maps equal one process's.

The speed-up of ``K`` processes is the rate over the rate of the first entry of ``processes``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .jobs import Log, Metrics, Progress, Result

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .jobs import Event


@dataclass(frozen=True)
class ScaleBench:
    """Settings of the scale bench (``-o KEY=VALUE``)."""

    processes: tuple[int, ...] = (1, 2)
    threads: int = 1  # torch threads per process
    gumnet_preset: str = "small"
    gumnet_steps: int = 60
    gumnet_batch: int = 8
    stack_images: int = 200_000  # the memory-mapped float16 stack cryoDRGN trains on
    stack_source: str = "phantom:ferritin"
    stack_box: int = 64  # pixels (3 Å each at 64; the same field of view at other sizes)
    drgn_steps: int = 150
    drgn_batch: int = 32
    drgn_zdim: int = 8
    align_pairs: int = 32
    align_rotations: int = 200
    eval_points: int = 32  # decoded in blocks of 8, whole blocks per rank: 32 splits evenly over 2 or 4
    average_subtomograms: int = 100
    average_rotations: int = 1000  # the global iteration's SO(3) grid (align average --rotations)
    work: str | None = None  # a folder to keep the stack and the runs in (a second run reuses the stack)
    timeout_s: float = 3600.0  # one run's limit


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parents.items() if pp == p]
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def _run(args: Sequence[str], nproc: int, threads: int, cwd: Path, timeout: float) -> dict[str, Any]:
    """Run ``cryoforge ARGS`` under torchrun with ``nproc`` processes; stdout, wall time and the peak resident memory
    (MiB) of each worker process (sampled every 0.2 s, and its kernel high-water mark)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
           f"--master-port={_port()}", "-m", "cryoforge.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        peak: dict[int, int] = {}
        while proc.poll() is None:
            for pid in _tree(proc.pid)[1:]:  # the workers (torchrun's own agent is the root)
                peak[pid] = max(peak.get(pid, 0), _status_kb(pid, "VmHWM"), _status_kb(pid, "VmRSS"))
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                raise RuntimeError(f"`cryoforge {' '.join(args)}` on {nproc} processes ran past {timeout:.0f} s")
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        raise RuntimeError(f"`cryoforge {' '.join(args)}` on {nproc} processes failed ({proc.returncode}): "
                           + "\n".join(stderr.strip().splitlines()[-5:]))
    workers = sorted((v for v in peak.values() if v), reverse=True)[:nproc]
    return {"stdout": stdout, "wall_s": time.perf_counter() - t0, "peak_rss_mib": [round(v / 1024) for v in workers]}


def _train_rate(checkpoint: Path, per_step: int) -> float:
    """Items per second over the metrics reports after the first one (start-up and validation left out)."""
    import torch

    hist = [h for h in torch.load(checkpoint, map_location="cpu", weights_only=True)["extra"]["history"]
            if "loss" in h]
    if len(hist) < 2:
        raise RuntimeError(f"{checkpoint.name}: fewer than two metrics reports; train more steps")
    a, b = hist[0], hist[-1]
    return (b["step"] - a["step"]) * per_step / max(b["wall_s"] - a["wall_s"], 1e-9)


def _simulate_stack(o: ScaleBench, work: Path) -> Path:
    folder = work / (f"stack_{o.stack_images}" + (f"_{o.stack_box}" if o.stack_box != 64 else ""))
    if (folder / "dataset.json").is_file():
        return folder
    subprocess.run([sys.executable, "-m", "cryoforge.cli", "simulate", "particles", o.stack_source, "-n",
                    str(o.stack_images), "--storage", "float16", "--box", str(o.stack_box), "--voxel-size", f"{192 / o.stack_box:g}",
                    "--out", str(folder)], check=True,
                   capture_output=True, cwd=work)
    return folder


def bench_scale(o: ScaleBench, device: str = "cpu") -> Iterator[Event]:
    """Job: the scale bench (module docstring); ``Result`` is the report (a JSON-ready dict)."""
    from .samples import SUBTOMO_PAIRS, sample_path

    if device != "cpu":
        yield Log("the scale bench runs its processes on the CPU (one GPU per process under NCCL is the same "
                  "command with --device cuda)", "warning")
    if not o.processes or min(o.processes) < 1:
        raise ValueError(f"processes must be positive counts; got {o.processes}")
    holder = None if o.work else tempfile.TemporaryDirectory(prefix="cryoforge-scale-")
    work = Path(o.work or (holder.name if holder else "."))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"settings": asdict(o), "machine": platform.processor() or platform.machine(),
                              "cpus": os.cpu_count(), "threads_per_process": o.threads, "runs": {}}
    total = 1 + 5 * len(o.processes)
    done = 0
    try:
        yield Progress(done, total, f"simulating {o.stack_images} particle images (float16)")
        t = time.perf_counter()
        stack = _simulate_stack(o, work)
        report["stack"] = {"images": o.stack_images, "box": o.stack_box, "dtype": "float16",
                           "bytes": (stack / "particles.mrcs").stat().st_size,
                           "simulated_s": round(time.perf_counter() - t, 1)}
        done += 1
        np.savetxt(work / "z.txt", np.random.default_rng(0).normal(size=(o.eval_points, o.drgn_zdim)))
        pairs = sample_path(SUBTOMO_PAIRS)
        for k in o.processes:
            runs: dict[str, Any] = {}
            yield Progress(done, total, f"Gum-Net training, {k} process(es)")
            ck = work / f"gumnet_{k}.pt"
            r = _run(["align", "train", "--preset", o.gumnet_preset, "--steps", str(o.gumnet_steps), "--batch",
                      str(o.gumnet_batch), "--validate-every", "0", "--val-pairs", "4", "--snr", "0.1",
                      "--checkpoint", str(ck), "--restart"], k, o.threads, work, o.timeout_s)
            runs["gumnet_train"] = {"pairs_per_s": _train_rate(ck, o.gumnet_batch), "wall_s": r["wall_s"],
                                    "peak_rss_mib": r["peak_rss_mib"]}
            done += 1
            yield Progress(done, total, f"cryoDRGN training on the stack, {k} process(es)")
            ck = work / f"drgn_{k}.pt"
            ck.unlink(missing_ok=True)  # a fresh training, not a resumed one
            star = stack / "particles.star"
            r = _run(["drgn", "train", str(stack / "particles.mrcs"), "--poses", str(star), "--ctf", str(star),
                      "--zdim", str(o.drgn_zdim), "--steps", str(o.drgn_steps), "--batch", str(o.drgn_batch),
                      "--validate-every", "0", "--checkpoint", str(ck)], k, o.threads, work, o.timeout_s)
            runs["drgn_train"] = {"images_per_s": _train_rate(ck, o.drgn_batch), "wall_s": r["wall_s"],
                                  "peak_rss_mib": r["peak_rss_mib"], "peak_rss_mib_all": sum(r["peak_rss_mib"])}
            done += 1
            yield Progress(done, total, f"pair alignment, {k} process(es)")
            r = _run(["align", "run", str(pairs), "--method", "classical", "--rotations", str(o.align_rotations),
                      "--limit", str(o.align_pairs), "--batch", "4", "--out", str(work / f"align_{k}.star")],
                     k, o.threads, work, o.timeout_s)
            m = re.search(r"pairs_per_s\s+([0-9.eE+-]+)", r["stdout"])
            runs["align_run"] = {"pairs_per_s": float(m.group(1)) if m else float("nan"), "wall_s": r["wall_s"]}
            done += 1
            yield Progress(done, total, f"volume decoding, {k} process(es)")
            r = _run(["drgn", "eval", str(work / f"drgn_{o.processes[0]}.pt"), "--zfile", str(work / "z.txt"),
                      "-o", str(work / f"eval_{k}")], k, o.threads, work, o.timeout_s)
            m = re.search(r"decoded \d+ volumes in ([0-9.]+) s", r["stdout"])
            runs["drgn_eval"] = {"volumes_per_s": o.eval_points / float(m.group(1)) if m else float("nan"),
                                 "wall_s": r["wall_s"]}
            done += 1
            yield Progress(done, total, f"subtomogram averaging, {k} process(es)")
            r = _run(["align", "average", str(pairs), "--limit", str(o.average_subtomograms), "--iterations", "2",
                      "--global-iterations", "1", "--own-global-iterations", "0", "--rotations",
                      str(o.average_rotations), "--out", str(work / f"avg_{k}")],
                     k, o.threads, work, o.timeout_s)
            its = json.loads((work / f"avg_{k}" / "average.json").read_text())["iterations"]
            runs["average"] = {"subtomograms_per_s": len(its) * o.average_subtomograms / sum(i["seconds"] for i in its),
                               "seconds_per_iteration": {i["search"]: i["seconds"] for i in its}, "wall_s": r["wall_s"]}
            done += 1
            report["runs"][str(k)] = runs
            yield Metrics({f"{job}_{k}": next(v for key, v in vals.items() if key.endswith("_per_s"))
                           for job, vals in runs.items()})
        base = report["runs"][str(o.processes[0])]
        report["speedup"] = {str(k): {job: round(next(v for key, v in vals.items() if key.endswith("_per_s"))
                                                 / next(v for key, v in base[job].items() if key.endswith("_per_s")), 3)
                                      for job, vals in report["runs"][str(k)].items()} for k in o.processes}
        report["identical_to_one_process"] = {str(k): _same_outputs(work, o.processes[0], k) for k in o.processes}
        yield Progress(total, total, "done")
        yield Result(report)
    finally:
        if holder is not None:
            holder.cleanup()


def _same_outputs(work: Path, a: int, b: int) -> dict[str, bool]:
    """Whether the batch jobs' outputs of ``b`` processes equal those of ``a``: the STAR rows (its time stamp aside)
    and the maps (their labels, which carry a time stamp, aside)."""
    def rows(p: Path) -> list[str]:
        return [ln for ln in p.read_text().splitlines() if not ln.startswith("# Created")]

    def maps(d: Path) -> dict[str, bytes]:
        return {f.name: f.read_bytes()[:224] + f.read_bytes()[1024:] for f in sorted(d.iterdir())}

    def averages(d: Path) -> dict[str, bytes]:
        return {f: (d / f).read_bytes()[1024:] for f in ("average.mrc", "half1.mrc", "half2.mrc")}

    return {"align_run": rows(work / f"align_{a}.star") == rows(work / f"align_{b}.star"),
            "drgn_eval": maps(work / f"eval_{a}") == maps(work / f"eval_{b}"),
            "average": averages(work / f"avg_{a}") == averages(work / f"avg_{b}")}

