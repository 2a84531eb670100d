"""Many processes under PyTorch's torchrun: the helpers of :mod:`cryoforge.jobs.distributed`, a pair alignment over two
torchrun "nodes" on loopback equal to one process's, Gum-Net trained by two ranks and resumed by one, and a rank
killed mid-run leaving a checkpoint that resumes."""

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
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "cryoforge.cli", *RUN, "--out", str(tmp_path / "one.star")], env=env,
                   check=True, capture_output=True)
    port = _port()
    nodes = [_torchrun([*RUN, "--out", str(tmp_path / "two.star")], tmp_path, nnodes=2, node_rank=k, port=port)
             for k in (0, 1)]
    outs = [p.communicate(timeout=240) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    assert "rank 0 of 2: pairs 0–3" in outs[0][1] and "rank 1 of 2" not in outs[1][1]  # only rank 0 draws a bar
    assert "wrote" in outs[0][0] and not outs[1][0].strip()  # rank 0 writes and reports, rank 1 stays quiet
    assert _rows(tmp_path / "two.star") == _rows(tmp_path / "one.star")  # byte for byte but the time stamp


def test_gumnet_trains_on_two_ranks_and_resumes_on_one(tmp_path):
    ck = tmp_path / "g.pt"
    p = _torchrun([*TRAIN, "--steps", "4", "--checkpoint", str(ck)], tmp_path, nproc=2)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    payload = torch.load(ck, weights_only=True)
    assert payload["extra"]["step"] == 4 and payload["extra"]["command"].startswith("torchrun --nproc-per-node 2")
    assert out.count("checkpoint") == 1  # printed once, by rank 0
    assert main([*TRAIN, "--steps", "6", "--checkpoint", str(ck)]) == 0
    assert torch.load(ck, weights_only=True)["extra"]["step"] == 6


def test_cryodrgn_on_two_ranks_takes_the_steps_of_one_process(tmp_path):
    """The ranks split each step's batch of images and average their gradients (DDP): a homogeneous model (no
    latent noise) trained by two ranks equals the one a single process trains, to float rounding."""
    import pickle

    import numpy as np

    from cryoforge.io.mrc import write_mrc

    write_mrc(tmp_path / "p.mrcs", np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32), 3.0)
    rot = torch.linalg.qr(torch.randn(16, 3, 3, generator=torch.Generator().manual_seed(1)))[0]
    with open(tmp_path / "poses.pkl", "wb") as fh:
        pickle.dump((rot * torch.det(rot).sign()[:, None, None]).numpy().astype(np.float32), fh)
    args = ["drgn", "train", str(tmp_path / "p.mrcs"), "--poses", str(tmp_path / "poses.pkl"), "--no-ctf",
            "--zdim", "0", "--dim", "8", "--layers", "1", "--batch", "8", "--validate-every", "0", "--steps", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "cryoforge.cli", *args, "--checkpoint", str(tmp_path / "one.pt")], env=env,
                   check=True, capture_output=True)
    p = _torchrun([*args, "--checkpoint", str(tmp_path / "two.pt")], tmp_path, nproc=2)
    assert p.wait(timeout=240) == 0, p.communicate()[1]
    one, two = (torch.load(tmp_path / f, weights_only=True)["state_dicts"]["decoder"] for f in ("one.pt", "two.pt"))
    for k, v in one.items():  # Adam moves each weight ≈ 1e-4 a step (lr): a rank training on its half alone fails
        torch.testing.assert_close(two[k], v, rtol=0, atol=2e-6)


def test_drgn_eval_over_two_ranks_writes_the_files_of_one_process(tmp_path):
    np = pytest.importorskip("numpy")
    np.savetxt(tmp_path / "z.txt", np.random.default_rng(2).normal(size=(5, 4)))
    args = ["drgn", "eval", "analytic:4", "--zfile", str(tmp_path / "z.txt")]
    assert main([*args, "-o", str(tmp_path / "one")]) == 0
    p = _torchrun([*args, "-o", str(tmp_path / "two")], tmp_path, nproc=2)
    assert p.wait(timeout=240) == 0, p.communicate()[1]
    names = sorted(f.name for f in (tmp_path / "one").iterdir())
    assert len(names) == 5 and names == sorted(f.name for f in (tmp_path / "two").iterdir())
    for n in names:  # the same header (but the time stamp in its labels) and the same map, byte for byte
        a, b = ((tmp_path / d / n).read_bytes() for d in ("one", "two"))
        assert len(a) == len(b) and a[:224] == b[:224] and a[1024:] == b[1024:]


def test_hypothesis_tests_over_two_ranks_give_one_process_table(tmp_path):
    args = ["hyptest", "test", str(PAIRS.parent / "hyptest" / "subtomos"), "--limit", "2", "--rotations", "60",
            "--n-pseudo", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "cryoforge.cli", *args, "--out", str(tmp_path / "one.csv")], env=env,
                   check=True, capture_output=True)
    p = _torchrun([*args, "--out", str(tmp_path / "two.csv")], tmp_path, nproc=2)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    assert "(rank 0 of 2)" in err and out.count("best ") == 2  # rank 0 reports every subtomogram, once
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


def test_the_3d_wgan_and_its_regressor_train_on_two_ranks(tmp_path):
    """The critic's three passes (gradient penalty included) as one DDP forward; the generator's step with the critic
    frozen; then the regressor; the GAN resumes on one process."""
    gan = ["hyptest", "train-gan", "--batch", "4", "--rotations", "2", "--width", "4", "--zdim", "8"]
    p = _torchrun([*gan, "--steps", "3", "--validate-every", "3", "--checkpoint", str(tmp_path / "g.pt")], tmp_path,
                  nproc=2)
    assert p.wait(timeout=240) == 0, p.communicate()[1]
    p = _torchrun(["hyptest", "train-regressor", "--gan", str(tmp_path / "g.pt"), "--batch", "4", "--rotations", "2",
                   "--steps", "2", "--validate-every", "2", "--checkpoint", str(tmp_path / "r.pt")], tmp_path, nproc=2)
    assert p.wait(timeout=240) == 0, p.communicate()[1]
    assert torch.load(tmp_path / "r.pt", weights_only=True)["extra"]["step"] == 2
    assert main([*gan, "--steps", "4", "--validate-every", "4", "--checkpoint", str(tmp_path / "g.pt")]) == 0
    assert torch.load(tmp_path / "g.pt", weights_only=True)["extra"]["step"] == 4


def test_multi_cryogan_trains_on_two_ranks_and_resumes_on_one(tmp_path):
    """Each rank simulates its share of the batch from its own seed. `--` ends torchrun's own options: without it
    torchrun reads mcgan's --star as an abbreviation of its --start-method."""
    adk = PAIRS.parent / "adk_continuous"
    args = ["mcgan", "train", str(adk / "particles.mrcs"), "--star", str(adk / "particles.star"), "--size", "16",
            "--batch", "8", "--poses", "2", "--gwidth", "8", "--cwidth", "8", "--checkpoint", str(tmp_path / "m.pt")]
    p = _torchrun(["--", *args, "--steps", "3", "--validate-every", "3"], tmp_path, nproc=2)
    assert p.wait(timeout=240) == 0, p.communicate()[1]
    assert torch.load(tmp_path / "m.pt", weights_only=True)["extra"]["step"] == 3
    assert main([*args, "--steps", "4", "--validate-every", "4"]) == 0
    assert torch.load(tmp_path / "m.pt", weights_only=True)["extra"]["step"] == 4


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
