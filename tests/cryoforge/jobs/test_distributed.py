"""Many processes under PyTorch's torchrun: the helpers of :mod:`cryoforge.jobs.distributed`, a pair alignment over two
torchrun "nodes" on loopback equal to one process's, every distributed command's two ranks against one process
(training, alignment, averaging, extraction, matching, decoding, hypothesis tests), a SIGTERM that stops every rank
after the same step, and a rank killed mid-run leaving a checkpoint that resumes. The two-rank commands share one
launch (``two_ranks.py``); the tests that start, stop or kill ranks launch their own."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cryoforge.cli import main
from cryoforge.jobs.distributed import World, any_rank, broadcast, gather, mean_over_ranks, parallel, shard

PAIRS = Path(__file__).parents[3] / "sample_data" / "subtomo_pairs"
RUN = ["align", "run", str(PAIRS), "--method", "classical", "--rotations", "60", "--candidates", "2", "--limit", "6",
       "--batch", "2"]
TRAIN = ["align", "train", "--preset", "tiny", "--batch", "4", "--val-pairs", "3", "--validate-every", "0",
         "--snr", "100"]


@pytest.mark.parametrize("n,size,unit", [(10, 2, 1), (10, 3, 4), (6, 2, 2), (5, 4, 2), (0, 2, 3), (33, 2, 16),
                                         (4, 2, 4), (3, 8, 1)])
def test_shards_are_ordered_blocks_of_whole_units(n, size, unit):
    blocks = [shard(n, World(r, size), unit) for r in range(size)]
    assert [i for b in blocks for i in b] == list(range(n))
    assert all(b.start % unit == 0 for b in blocks if len(b))
    units = [-(-len(b) // unit) for b in blocks]
    assert max(units) - min(units) <= 1  # balanced to one batch
    assert n == 0 or len(blocks[0]) > 0  # rank 0 always has work (it shows the first batch)


def test_a_world_of_one_is_a_single_process(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    w = World.from_env()
    assert w == World() and w.main and w.device("cuda") == "cuda"
    net = torch.nn.Linear(2, 2)
    assert parallel(net, w) is net
    assert gather(3, w) == [3] and broadcast("x", w) == "x" and mean_over_ranks({"a": 2.0}, w) == {"a": 2.0}
    assert any_rank(True, w) and not any_rank(False, w)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = World.from_env()
    assert (w.rank, w.size, w.main, w.device("cuda"), w.device("cpu")) == (3, 4, False, "cuda:1", "cpu")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args, cwd, nproc=1, nnodes=1, node_rank=0, port=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}",
           f"--node-rank={node_rank}", "--master-addr=127.0.0.1", f"--master-port={port or _port()}",
           "-m", "cryoforge.cli", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_process(args):
    """``cryoforge ARGS`` in this process with one torch thread (as each torchrun rank here runs): a process's
    start-up (≈ 3 s of imports) saved per reference run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(list(args)) == 0
    finally:
        torch.set_num_threads(threads)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return sorted(kids)


def _rows(path):
    return [ln for ln in Path(path).read_text().splitlines() if not ln.startswith("# Created")]


def test_two_nodes_on_loopback_align_as_one_process(tmp_path):
    """Byte for byte at the same thread setting (one thread: across thread counts the poses differ in the 6th
    decimal, as any two runs of one process with different threads do)."""
    _one_process([*RUN, "--out", str(tmp_path / "one.star")])
    port = _port()
    nodes = [_torchrun([*RUN, "--out", str(tmp_path / "two.star")], tmp_path, nnodes=2, node_rank=k, port=port)
             for k in (0, 1)]
    outs = [p.communicate(timeout=240) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    assert "rank 0 of 2: pairs 0–3" in outs[0][1] and "rank 1 of 2" not in outs[1][1]  # only rank 0 draws a bar
    assert "wrote" in outs[0][0] and not outs[1][0].strip()  # rank 0 writes and reports, rank 1 stays quiet
    assert _rows(tmp_path / "two.star") == _rows(tmp_path / "one.star")  # byte for byte but the time stamp


# ---- commands of two ranks, all in one torchrun launch (two_ranks.py) ----------------------------------------------
# Each test registers ``prepare(folder) -> [args, …]``; the module's fixture prepares every test's folder, has two
# ranks run all their commands in one launch (≈ 4 s of start-up each saved) and each test then compares rank 0's
# outputs with one process's, as a separate `torchrun -m cryoforge.cli` launch would be compared.
TWO_RANKS = {}


def two_ranks_commands(prepare):
    TWO_RANKS[prepare.__name__.removeprefix("_")] = prepare
    return prepare


class Launch:
    def __init__(self, root: Path, proc: subprocess.CompletedProcess):
        self.root, self.proc = root, proc

    def folder(self, name: str) -> Path:
        return self.root / name

    def run(self, name: str, i: int = 0) -> tuple[str, str]:
        """Rank 0's standard output and error of command ``i`` of ``name``, which must have succeeded on both ranks."""
        d = self.root / name
        for rank in (0, 1):
            rc = d / f"cmd{i}.rank{rank}.rc"
            err = (d / f"cmd{i}.rank{rank}.err")
            assert rc.is_file(), f"{name}[{i}] did not run (launch exit {self.proc.returncode}): {self.proc.stderr[-3000:]}"
            assert rc.read_text() == "0", f"{name}[{i}], rank {rank}: {err.read_text()[-3000:]}"
        return (d / f"cmd{i}.rank0.out").read_text(), (d / f"cmd{i}.rank0.err").read_text()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    import json

    root = tmp_path_factory.mktemp("two_ranks")
    plan: list[dict] = []
    for name, prepare in TWO_RANKS.items():
        folder = root / name
        folder.mkdir()
        plan += [{"name": f"cmd{i}", "args": [str(a) for a in args], "cwd": str(folder)}
                 for i, args in enumerate(prepare(folder))]
    plan.append({"chunked_sum": str(root / "chunked_sum.txt")})
    (root / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[3])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                           "--master-addr=127.0.0.1", f"--master-port={_port()}",
                           str(Path(__file__).with_name("two_ranks.py")), str(root / "plan.json")],
                          env=env, capture_output=True, text=True, timeout=900)
    return Launch(root, proc)


def test_the_ranks_sum_an_average_in_chunks_as_one_process_does(two_ranks):
    assert (two_ranks.root / "chunked_sum.txt").read_text() == "ok", two_ranks.proc.stderr[-3000:]


@two_ranks_commands
def _gumnet(d):
    return [[*TRAIN, "--steps", "4", "--checkpoint", d / "g.pt"]]


def test_gumnet_trains_on_two_ranks_and_resumes_on_one(two_ranks):
    out, _ = two_ranks.run("gumnet")
    ck = two_ranks.folder("gumnet") / "g.pt"
    payload = torch.load(ck, weights_only=True)
    assert payload["extra"]["step"] == 4 and payload["extra"]["command"].startswith("torchrun --nproc-per-node 2")
    assert out.count("checkpoint") == 1  # printed once, by rank 0
    assert main([*TRAIN, "--steps", "6", "--checkpoint", str(ck)]) == 0
    assert torch.load(ck, weights_only=True)["extra"]["step"] == 6


def _drgn_args(d):
    import pickle

    import numpy as np

    from cryoforge.io.mrc import write_mrc

    write_mrc(d / "p.mrcs", np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32), 3.0)
    rot = torch.linalg.qr(torch.randn(16, 3, 3, generator=torch.Generator().manual_seed(1)))[0]
    with open(d / "poses.pkl", "wb") as fh:
        pickle.dump((rot * torch.det(rot).sign()[:, None, None]).numpy().astype(np.float32), fh)
    return ["drgn", "train", str(d / "p.mrcs"), "--poses", str(d / "poses.pkl"), "--no-ctf",
            "--zdim", "0", "--dim", "8", "--layers", "1", "--batch", "8", "--validate-every", "0", "--steps", "3"]


@two_ranks_commands
def _drgn(d):
    return [[*_drgn_args(d), "--checkpoint", d / "two.pt"]]


def test_cryodrgn_on_two_ranks_takes_the_steps_of_one_process(two_ranks):
    """The ranks split each step's batch of images and average their gradients (DDP): a homogeneous model (no
    latent noise) trained by two ranks equals the one a single process trains, to float rounding."""
    two_ranks.run("drgn")
    d = two_ranks.folder("drgn")
    _one_process([*_drgn_args(d), "--checkpoint", str(d / "one.pt")])
    one, two = (torch.load(d / f, weights_only=True)["state_dicts"]["decoder"] for f in ("one.pt", "two.pt"))
    for k, v in one.items():  # Adam moves each weight ≈ 1e-4 a step (lr): a rank training on its half alone fails
        torch.testing.assert_close(two[k], v, rtol=0, atol=2e-6)


def _pose_search_args(d):
    from cryoforge.conventions import random_rotations
    from cryoforge.io.mrc import write_mrc
    from tests.helpers import adk_map, projections

    write_mrc(d / "p.mrcs", projections(adk_map(16), random_rotations(16, seed=1)), 3.0)
    return ["drgn", "train", str(d / "p.mrcs"), "--pose-search", "--no-ctf", "--pretrain", "8",
            "--ps-every", "100", "--t-extent", "0", "--zdim", "0", "--dim", "8", "--layers", "1", "--batch", "8",
            "--validate-every", "0", "--steps", "4"]


@two_ranks_commands
def _pose_search(d):
    return [[*_pose_search_args(d), "--checkpoint", d / "two.pt"]]


def test_cryodrgn_pose_search_on_two_ranks_finds_the_poses_of_one_process(two_ranks):
    """Random-pose pretraining draws the global batch's poses and each rank takes its block; after it each rank
    searches the due images of its block and the ranks exchange what they found, so every rank holds the whole
    pose table, the one a single process builds."""
    import numpy as np

    two_ranks.run("pose_search")
    d = two_ranks.folder("pose_search")
    _one_process([*_pose_search_args(d), "--checkpoint", str(d / "one.pt")])
    one, two = (torch.load(d / f, weights_only=True)["state_dicts"] for f in ("one.pt", "two.pt"))
    searched = one["poses"]["searched"]
    assert (searched >= 2).sum() >= 8  # three steps of searches after the one of pretraining
    torch.testing.assert_close(two["poses"]["searched"], searched, rtol=0, atol=0)
    torch.testing.assert_close(two["poses"]["rot"], one["poses"]["rot"], rtol=0, atol=1e-5)
    for k, v in one["decoder"].items():
        torch.testing.assert_close(two["decoder"][k], v, rtol=0, atol=2e-6)
    assert np.isfinite(two["poses"]["rot"].numpy()).all()


def _data(path):
    """An MRC file's bytes past its 1 024-byte header (whose labels carry the time of writing)."""
    return Path(path).read_bytes()[1024:]


def _extraction_args(d):
    import numpy as np

    from cryoforge.io.mrc import write_mrc
    from cryoforge.io.tomo_particles import TomoParticles, write_relion5

    rng = np.random.default_rng(2)
    shape = (24, 64, 64)
    write_mrc(d / "TS_1.mrc", rng.normal(size=shape).astype(np.float32), 5.0)
    xyz = rng.uniform(4, 20, size=(600, 3)) * [2.5, 2.5, 1]
    write_relion5(d / "p.star", TomoParticles.from_voxels(xyz, 5.0, shape, None, "TS_1"), 5.0)
    return ["extract", str(d / "TS_1.mrc"), str(d / "p.star"), "--box", "8"]


@two_ranks_commands
def _extraction(d):
    return [[*_extraction_args(d), "--out", d / "two"]]


def test_extraction_over_two_ranks_writes_the_folder_of_one_process(two_ranks):
    """600 particles at fractional positions: rank 0 crops the first two chunks of 256, rank 1 the rest."""
    out, _ = two_ranks.run("extraction")
    d = two_ranks.folder("extraction")
    _one_process([*_extraction_args(d), "--out", str(d / "one")])
    assert out.count("wrote 600 subtomograms") == 1  # rank 0 reports
    assert _data(d / "two" / "subtomograms.mrcs") == _data(d / "one" / "subtomograms.mrcs")
    assert _rows(d / "two" / "subtomograms.star") == _rows(d / "one" / "subtomograms.star")


def _averaging_args(d):
    from cryoforge.conventions import random_rotations
    from cryoforge.io.mrc import write_mrc
    from cryoforge.io.tomo_particles import TomoParticles, write_relion5
    from tests.helpers import tomogram_of_copies

    rot = random_rotations(12, seed=5).double()
    vol, ref, xyz = tomogram_of_copies(rot, 20, (24, 72, 96), noise=0.05)
    write_mrc(d / "TS_9.mrc", vol, 6.0)
    write_mrc(d / "ref.mrc", ref, 6.0)
    write_relion5(d / "p.star", TomoParticles.from_voxels(xyz, 6.0, (24, 72, 96), rot.numpy(), "TS_9"), 6.0)
    tomo = [str(d / "TS_9.mrc"), "--particles", str(d / "p.star"), "--box", "20"]
    return (["align", "average", *tomo, "--iterations", "2", "--global-iterations", "1", "--rotations", "300"],
            ["align", "run", *tomo, "--reference", str(d / "ref.mrc"), "--rotations", "100", "--candidates", "2"])


@two_ranks_commands
def _averaging(d):
    average, run = _averaging_args(d)
    return [[*average, "--out", d / "avg_two"], [*run, "--out", d / "run_two"]]


def test_averaging_over_two_ranks_writes_the_maps_and_poses_of_one_process(two_ranks):
    """Reference-free averaging of a tomogram's particles: each rank searches the poses of its block of each half
    set, every rank forms the same averages; rank 0 writes. Then aligned to a reference: each rank searches its
    block of the particles (6 + 6)."""
    out, err = two_ranks.run("averaging", 0)
    d = two_ranks.folder("averaging")
    average, run = _averaging_args(d)
    _one_process([*average, "--out", str(d / "avg_one")])
    assert out.count("wrote") == 1 and "(2 processes)" in err
    for name in ("average.mrc", "half1.mrc", "half2.mrc"):
        assert _data(d / "avg_two" / name) == _data(d / "avg_one" / name), name
    assert _rows(d / "avg_two" / "particles.star") == _rows(d / "avg_one" / "particles.star")
    two_ranks.run("averaging", 1)
    _one_process([*run, "--out", str(d / "run_one")])
    assert _data(d / "run_two" / "average.mrc") == _data(d / "run_one" / "average.mrc")
    assert _rows(d / "run_two" / "particles.star") == _rows(d / "run_one" / "particles.star")


def _matching_args(d):
    from cryoforge.io.mrc import write_mrc
    from cryoforge.matching.job import match_rotations
    from tests.helpers import tomogram_of_copies

    vol, ref, _ = tomogram_of_copies(match_rotations(45.0)[[3, 20]], 20, (24, 24, 48), noise=0.5)
    write_mrc(d / "TS_2.mrc", vol, 6.0)
    write_mrc(d / "tpl.mrc", ref, 6.0)
    return ["match", str(d / "TS_2.mrc"), str(d / "tpl.mrc"), "--angular-step", "45", "--batch", "2"]


@two_ranks_commands
def _matching(d):
    return [[*_matching_args(d), "--out", d / "two"]]


def test_template_matching_over_two_ranks_writes_the_maps_of_one_process(two_ranks):
    """Each rank scores its block of the rotations; rank 0 keeps per voxel the best in rank order (a later rotation
    wins only with a higher score, as in one process)."""
    import json

    import numpy as np

    out, err = two_ranks.run("matching")
    d = two_ranks.folder("matching")
    _one_process([*_matching_args(d), "--out", str(d / "one")])
    assert out.count("wrote") == 1 and "(rank 0 of 2)" in err
    for name in ("scores.mrc", "angles.mrc"):
        assert _data(d / "two" / name) == _data(d / "one" / name), name
    one, two = (json.loads((d / k / "job.json").read_text()) for k in ("one", "two"))
    assert two["processes"] == 2 and two["score_sigma"] == pytest.approx(one["score_sigma"], rel=1e-9)
    assert np.isfinite(two["score_sigma"])


def _eval_args(d):
    import numpy as np

    np.savetxt(d / "z.txt", np.random.default_rng(2).normal(size=(5, 4)))
    return ["drgn", "eval", "analytic:4", "--zfile", str(d / "z.txt")]


@two_ranks_commands
def _drgn_eval(d):
    return [[*_eval_args(d), "-o", d / "two"]]


def test_drgn_eval_over_two_ranks_writes_the_files_of_one_process(two_ranks):
    two_ranks.run("drgn_eval")
    d = two_ranks.folder("drgn_eval")
    assert main([*_eval_args(d), "-o", str(d / "one")]) == 0
    names = sorted(f.name for f in (d / "one").iterdir())
    assert len(names) == 5 and names == sorted(f.name for f in (d / "two").iterdir())
    for n in names:  # the same header (but the time stamp in its labels) and the same map, byte for byte
        a, b = ((d / k / n).read_bytes() for k in ("one", "two"))
        assert len(a) == len(b) and a[:224] == b[:224] and a[1024:] == b[1024:]


HYPTEST = ["hyptest", "test", str(PAIRS.parent / "hyptest" / "subtomos"), "--limit", "2", "--rotations", "60",
           "--n-pseudo", "100"]


@two_ranks_commands
def _hyptest(d):
    return [[*HYPTEST, "--out", d / "two.csv"]]


def test_hypothesis_tests_over_two_ranks_give_one_process_table(two_ranks):
    out, err = two_ranks.run("hyptest")
    d = two_ranks.folder("hyptest")
    _one_process([*HYPTEST, "--out", str(d / "one.csv")])
    assert "(rank 0 of 2)" in err and out.count("best ") == 2  # rank 0 reports every subtomogram, once
    assert (d / "one.csv").read_bytes() == (d / "two.csv").read_bytes()


GAN = ["hyptest", "train-gan", "--batch", "4", "--rotations", "2", "--width", "4", "--zdim", "8"]


@two_ranks_commands
def _wgan(d):
    return [[*GAN, "--steps", "3", "--validate-every", "3", "--checkpoint", d / "g.pt"],
            ["hyptest", "train-regressor", "--gan", d / "g.pt", "--batch", "4", "--rotations", "2", "--steps", "2",
             "--validate-every", "2", "--checkpoint", d / "r.pt"]]


def test_the_3d_wgan_and_its_regressor_train_on_two_ranks(two_ranks):
    """The critic's three passes (gradient penalty included) as one DDP forward; the generator's step with the critic
    frozen; then the regressor; the GAN resumes on one process."""
    two_ranks.run("wgan", 0)
    two_ranks.run("wgan", 1)
    d = two_ranks.folder("wgan")
    assert torch.load(d / "r.pt", weights_only=True)["extra"]["step"] == 2
    assert main([*GAN, "--steps", "4", "--validate-every", "4", "--checkpoint", str(d / "g.pt")]) == 0
    assert torch.load(d / "g.pt", weights_only=True)["extra"]["step"] == 4


def _mcgan_args(d):
    adk = PAIRS.parent / "adk_continuous"
    return ["mcgan", "train", str(adk / "particles.mrcs"), "--star", str(adk / "particles.star"), "--size", "16",
            "--batch", "8", "--poses", "2", "--gwidth", "8", "--cwidth", "8", "--checkpoint", str(d / "m.pt")]


@two_ranks_commands
def _mcgan(d):
    return [[*_mcgan_args(d), "--steps", "3", "--validate-every", "3"]]


def test_multi_cryogan_trains_on_two_ranks_and_resumes_on_one(two_ranks):
    """Each rank simulates its share of the batch from its own seed."""
    two_ranks.run("mcgan")
    d = two_ranks.folder("mcgan")
    assert torch.load(d / "m.pt", weights_only=True)["extra"]["step"] == 3
    assert main([*_mcgan_args(d), "--steps", "4", "--validate-every", "4"]) == 0
    assert torch.load(d / "m.pt", weights_only=True)["extra"]["step"] == 4


def test_a_command_that_runs_as_one_process_refuses_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["info", str(PAIRS / "maps.mrc")]) == 2
    assert "runs as one process" in capsys.readouterr().err


def test_sigterm_to_torchrun_stops_every_rank_after_the_same_step(tmp_path):
    import signal

    ck = tmp_path / "c.pt"
    p = _torchrun([*TRAIN, "--steps", "100000", "--checkpoint-every", "1000", "--checkpoint", str(ck)], tmp_path,
                  nproc=2)
    try:
        t0 = time.monotonic()
        while "step" not in p.stderr.readline() and time.monotonic() - t0 < 120:
            pass  # the first progress line: training has started
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)  # what a scheduler sends; torchrun passes it to the ranks
        err = p.communicate(timeout=120)[1]
    finally:
        if p.poll() is None:
            p.kill()
    assert "the same command resumes" in err, err[-2000:]
    step = torch.load(ck, weights_only=True)["extra"]["step"]
    assert f"holds step {step};" in err  # rank 0 saved the step at which both stopped
    assert main([*TRAIN, "--steps", str(step + 1), "--checkpoint", str(ck)]) == 0


def test_a_killed_rank_leaves_a_checkpoint_that_resumes(tmp_path):
    ck = tmp_path / "k.pt"
    p = _torchrun([*TRAIN, "--steps", "100000", "--checkpoint-every", "2", "--checkpoint", str(ck)], tmp_path, nproc=2)
    try:
        t0 = time.monotonic()
        while not ck.is_file() and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        assert ck.is_file(), "no checkpoint within 2 min"
        ranks = _children(p.pid)
        assert len(ranks) == 2
        os.kill(ranks[-1], 9)
        p.communicate(timeout=120)
        assert p.returncode != 0  # torchrun reports the lost rank and stops the other
    finally:
        if p.poll() is None:
            p.kill()
    step = torch.load(ck, weights_only=True)["extra"]["step"]
    assert step >= 2
    assert main([*TRAIN, "--steps", str(step + 2), "--checkpoint", str(ck)]) == 0
    assert torch.load(ck, weights_only=True)["extra"]["step"] == step + 2
