"""Run under torchrun by test_distributed.py: many ``cryoforge`` commands by the same ranks in one launch.

``python -m torch.distributed.run --nproc-per-node 2 tests/cryoforge/jobs/two_ranks.py PLAN.json`` runs, in order,
each entry of the plan — ``{"args": [...], "cwd": DIR, "name": NAME}`` — as ``cryoforge ARGS`` would run under its
own ``torchrun`` (``cryoforge.cli.main`` in this rank, one torch thread), with this rank's standard output and error
in ``DIR/NAME.rankR.out`` / ``.err`` and its exit status in ``DIR/NAME.rankR.rc``. An entry ``{"chunked_sum": FILE}``
checks instead that the ranks sum an average in chunks as one process does (``ok`` or the difference in FILE).

Why: a launch costs two interpreters importing torch (≈ 4 s on 2 cores); ten commands in one launch save ≈ 35 s of
the suite. What one launch cannot share is kept apart by the tests: the group is joined once here and left at the
end, so ``distributed.stop`` waits for the other rank after each command but does not leave the group (gloo cannot
join a second group on the store of the first: stale addresses); the tests that stop, kill or join ranks
(two nodes, SIGTERM, a killed rank) launch their own ``torchrun`` and run the real start and stop.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from cryoforge.jobs import distributed


def chunked_sum(world: distributed.World, out: Path) -> None:
    """The Fourier-weighted average of 30 subtomograms summed by the ranks in chunks of 4 (rank 0: chunks 1–4,
    rank 1: 5–8) against one process's."""
    from cryoforge.align.average import weighted_average
    from cryoforge.conventions import random_rotations

    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 12, 12, 12, generator=g)
    masks = (torch.rand(30, 12, 12, 12, generator=g) > 0.3).float()
    rot, sh = random_rotations(30, seed=1), torch.randn(30, 3, generator=g)
    two = weighted_average(x, masks, rot, sh, chunk=4, world=world)
    one = weighted_average(x, masks, rot, sh, chunk=4)
    if world.main:
        out.write_text("ok" if torch.equal(one, two) else f"differ by {float((one - two).abs().max()):.3g}")


def run_command(entry: dict, rank: int) -> int:
    """``cryoforge ARGS`` with this rank's file descriptors 1 and 2 on files (what a separate launch's pipes show)."""
    from cryoforge.cli import main

    folder = Path(entry["cwd"])
    stem = folder / f"{entry['name']}.rank{rank}"
    saved = [os.dup(1), os.dup(2)]
    stdout = sys.stdout
    cwd = os.getcwd()
    with open(f"{stem}.out", "w") as out, open(f"{stem}.err", "w") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            os.chdir(folder)
            status = main(entry["args"])
        finally:
            os.chdir(cwd)
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout = stdout  # a rank but the first points sys.stdout to os.devnull in main()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
    Path(f"{stem}.rc").write_text(str(status))
    return status


def main() -> int:
    world = distributed.World.from_env()
    torch.set_num_threads(1)
    distributed.start(world)
    leave = distributed.stop
    # each command ends by waiting for the other rank; the group is left once, at the end
    distributed.stop = lambda w, wait=True: torch.distributed.barrier() if wait and w.size > 1 else None
    try:
        for entry in json.loads(Path(sys.argv[1]).read_text()):
            if "chunked_sum" in entry:
                chunked_sum(world, Path(entry["chunked_sum"]))
            elif run_command(entry, world.rank) != 0:
                os._exit(1)  # the other rank may wait in a collective for ever: torchrun stops it
    finally:
        distributed.stop = leave
    leave(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
