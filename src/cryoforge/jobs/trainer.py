"""The one training loop every model shares (Gum-Net, 3D-WGAN, cryoDRGN, Multi-CryoGAN).

A model plugs in as a :class:`Trainable`: its modules and optimizers (what a checkpoint holds), a
``train_step(step)`` returning scalar metrics, and optionally ``validate(step)`` returning metrics and
preview arrays. :func:`train_job` is a job (:mod:`cryoforge.jobs`): it yields progress, running-mean
training metrics, validation metrics and previews; its :class:`Schedule` says how far and how often: it
checkpoints atomically every ``checkpoint_every`` steps, at the end, and when cancelled (so nothing finished is
lost); with ``resume`` it continues from the checkpoint's step. Steps draw their random data from ``seed + step``
(the trainable's business), so a resumed run sees the same data as an uninterrupted one. ``max_seconds`` bounds
the training time instead (a GPU lease, a coffee break): the run validates, checkpoints and ends at the first step
that reaches it. The job's ``Result`` is a :class:`TrainingResult`.

Under ``torchrun`` (a :class:`cryoforge.jobs.distributed.World` of more than one process) the same loop runs on
every rank: the trainable's ``distribute(world)`` wraps its networks in ``DistributedDataParallel`` and gives each
rank its share of every step's batch; only rank 0 takes the checkpoint's lock, writes it and validates (a
trainable's extra state — a curriculum's position — then goes from rank 0 to the others); training metrics are
averaged over the ranks; a step count is global, so a checkpoint resumes under any number of processes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .distributed import World, any_rank, broadcast, mean_over_ranks
from .events import Log, Metrics, Preview, Progress, Result
from .runner import Cancelled, stop_asked

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ..hints import PathLike
    from ..jobs import Event



@dataclass(frozen=True)
class Schedule:
    """How far a training runs and how often it reports. A field left None takes the model's own default
    (the trainable's ``default_schedule``, else :data:`DEFAULT_SCHEDULE`)."""

    steps: int | None = None  # optimisation steps to reach (a resumed run counts the checkpoint's)
    checkpoint_every: int | None = None  # steps between checkpoints (also at the end and when cancelled)
    validate_every: int | None = None  # steps between validations (0: only at the end)
    metrics_every: int | None = None  # steps between running-mean training metrics
    max_seconds: float | None = None  # this run's training-time limit (None: none)
    resume: bool = True  # continue from the checkpoint when it exists

    def over(self, defaults: Schedule) -> Schedule:
        """The schedule with its unset (None) fields taken from ``defaults``."""
        return replace(defaults, **{f.name: getattr(self, f.name) for f in fields(self)
                                    if getattr(self, f.name) is not None})


DEFAULT_SCHEDULE = Schedule(steps=1000, checkpoint_every=200, validate_every=100, metrics_every=10)


@dataclass
class TrainingResult:
    """What a training job returns: the checkpoint written (None without one), the step reached, the training
    time of all runs together (s), the last validation metrics and the metrics history."""

    checkpoint: str | None
    step: int
    wall_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the benches' reports)."""
        return asdict(self)


class Trainable(Protocol):
    """What :func:`train_job` trains: modules and optimisers by name, its architecture (a frozen dataclass a resumed
    checkpoint must match), the config a checkpoint stores (the architecture and training configs as
    :func:`cryoforge.configs.to_dict` sections, with the family's own keys), a step and a validation; a class
    attribute ``default_schedule`` (a :class:`Schedule`) may set the model's own checkpoint / validation intervals."""

    kind: str
    architecture: Any
    config: dict
    modules: dict
    optimizers: dict

    def train_step(self, step: int) -> dict: ...

    def validate(self, step: int) -> tuple[dict, list[Preview]]: ...


# A trainable may also keep state of its own beyond modules and optimisers (a curriculum's position): ``extra_state()``
# returns a dict of plain numbers saved with the checkpoint, ``load_extra_state(d)`` restores it on resume.
# A trainable that can train over many processes has ``distribute(world)`` (called once, before the first step).


def _state(trainer: Trainable) -> dict:
    states = {name: m.state_dict() for name, m in trainer.modules.items()}
    states.update({f"optimizer.{name}": o.state_dict() for name, o in trainer.optimizers.items()})
    return states


def save_training(trainer: Trainable, path: PathLike, step: int, history: list, wall_s: float, metrics: dict) -> Path:
    """Checkpoint a trainer atomically: config, state dicts, step, history, wall time and metrics."""
    from ..io.checkpoint import save_checkpoint

    extra = {"step": step, "history": history, "wall_s": wall_s}
    if hasattr(trainer, "extra_state"):
        extra["trainer_state"] = trainer.extra_state()
    return save_checkpoint(path, trainer.kind, trainer.config, _state(trainer), metrics, extra)


def load_training(trainer: Trainable, path: PathLike) -> dict:
    """Restore modules and optimizers from ``path``; refuses another kind or another configuration."""
    from ..io.checkpoint import CheckpointError, config_section, load_checkpoint

    payload = load_checkpoint(path, kind=trainer.kind)
    theirs, mine = config_section(payload, type(trainer.architecture)), trainer.architecture
    if theirs != mine:
        diff = ", ".join(f"{f.name} {getattr(theirs, f.name)!r} (this run: {getattr(mine, f.name)!r})"
                         for f in fields(mine) if getattr(theirs, f.name) != getattr(mine, f.name))
        raise CheckpointError(f"{Path(path).name}: trained with another architecture: {diff}; "
                              "use another checkpoint path or the same architecture")
    for name, m in trainer.modules.items():
        m.load_state_dict(payload["state_dicts"][name])
    for name, o in trainer.optimizers.items():
        o.load_state_dict(payload["state_dicts"][f"optimizer.{name}"])
    if hasattr(trainer, "load_extra_state") and "trainer_state" in payload["extra"]:
        trainer.load_extra_state(payload["extra"]["trainer_state"])
    return payload


def train_job(trainer: Trainable, schedule: Schedule | None = None,
              checkpoint: PathLike | None = None, world: World | None = None) -> Iterator[Event]:
    """Job: run ``trainer`` as ``schedule`` says (to ``steps``, or until ``max_seconds`` of this run's training);
    ``Result`` is a :class:`TrainingResult`. ``world``: this process's rank among several (module docstring);
    None, one process."""
    world = world or World()
    if world.size > 1:
        if not hasattr(trainer, "distribute"):  # the protocol's optional part (comment above)
            raise ValueError(f"{trainer.kind} training does not run over several processes yet; run it without "
                             "torchrun")
        trainer.distribute(world)
    s = (schedule or Schedule()).over(getattr(trainer, "default_schedule", DEFAULT_SCHEDULE).over(DEFAULT_SCHEDULE))
    assert s.steps is not None and s.checkpoint_every is not None and s.metrics_every is not None
    if s.steps < 1:
        raise ValueError(f"steps must be at least 1; got {s.steps}")
    if checkpoint is None or not world.main:
        yield from _train(trainer, s, checkpoint, world)
        return
    from ..io.atomic import exclusive_lock

    with exclusive_lock(checkpoint, "trained"):  # a second training of the same checkpoint stops at once
        yield from _train(trainer, s, checkpoint, world)


def _train(trainer: Trainable, s: Schedule, checkpoint, world: World):
    steps, checkpoint_every, validate_every = int(s.steps or 0), int(s.checkpoint_every or 1), s.validate_every
    metrics_every, max_seconds, resume = int(s.metrics_every or 1), s.max_seconds, s.resume
    start, history, wall0 = 0, [], 0.0
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        payload = load_training(trainer, checkpoint)
        start, history = int(payload["extra"]["step"]), list(payload["extra"].get("history", []))
        wall0 = float(payload["extra"].get("wall_s", 0.0))
        yield Log(f"resumed from {Path(checkpoint).name} at step {start}")
        if start >= steps:
            yield Log(f"the checkpoint is already at step {start} ≥ {steps}: nothing to train")
            yield Result(TrainingResult(str(checkpoint), start, wall0, payload.get("metrics", {}), history))
            return
    t0 = time.monotonic()
    last_val: dict[str, float] = {}
    running: dict[str, list[float]] = {}
    step = start
    wall = lambda: wall0 + time.monotonic() - t0  # noqa: E731
    try:
        for step in range(start + 1, steps + 1):
            for k, v in trainer.train_step(step).items():
                running.setdefault(k, []).append(float(v))
            last = step == steps or (max_seconds is not None
                                     and any_rank(time.monotonic() - t0 >= max_seconds, world))
            if step % metrics_every == 0 or last:
                means = mean_over_ranks({k: sum(v) / len(v) for k, v in running.items()}, world)
                running = {}
                history.append({"step": step, "wall_s": round(wall(), 2), **means})
                yield Metrics(means, step)
            if validate_every and (step % validate_every == 0 or last):
                last_val, previews = trainer.validate(step) if world.main else ({}, [])
                if world.size > 1:
                    last_val = broadcast(last_val, world)
                    if hasattr(trainer, "extra_state") and hasattr(trainer, "load_extra_state"):
                        trainer.load_extra_state(broadcast(trainer.extra_state(), world))  # what validation decided
                history.append({"step": step, "wall_s": round(wall(), 2), **{f"val_{k}": v for k, v in last_val.items()}})
                yield Metrics({f"val_{k}": v for k, v in last_val.items()}, step)
                yield from previews
            if checkpoint is not None and world.main and step % checkpoint_every == 0 and not last:
                save_training(trainer, checkpoint, step, history, wall(), last_val)
            yield Progress(step - start, steps - start, f"step {step}/{steps}")
            if last:
                break
            if world.size > 1 and any_rank(stop_asked(), world):  # every rank stops after this same step
                if checkpoint is not None and world.main:
                    save_training(trainer, checkpoint, step, history, wall(), last_val)
                raise Cancelled(f"stopped after step {step} on all {world.size} processes")
    except GeneratorExit:
        if checkpoint is not None and world.main and step > start:
            save_training(trainer, checkpoint, step, history, wall(), last_val)
        raise
    if checkpoint is not None and world.main:
        save_training(trainer, checkpoint, step, history, wall(), last_val)
    yield Result(TrainingResult(None if checkpoint is None else str(checkpoint), step, wall(), last_val, history))


def train_cli(job: Iterator[Event], checkpoint: PathLike, argv: Sequence[str],
              world: World | None = None) -> TrainingResult:
    """Run a training job in the terminal, record the command line in the checkpoint (``extra.command``: the
    provenance of shipped checkpoints) and print the final validation metrics; returns the Result value. Under
    ``torchrun`` only rank 0 touches the checkpoint and prints."""
    import shlex

    import torch

    from ..io.atomic import atomic_path
    from .runner import run_cli

    try:
        res = run_cli(job)
    except (Cancelled, KeyboardInterrupt):
        if Path(checkpoint).is_file() and (world is None or world.main):
            step = torch.load(checkpoint, map_location="cpu", weights_only=True)["extra"]["step"]
            print(f"cancelled: {checkpoint} holds step {step}; the same command resumes from it", file=sys.stderr)
        raise
    if world is not None and not world.main:
        return res
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    payload["extra"]["command"] = "cryoforge " + " ".join(shlex.quote(a) for a in argv)
    if world is not None and world.size > 1:
        payload["extra"]["command"] = (f"torchrun --nproc-per-node {world.size} -m cryoforge.cli "
                                       + " ".join(shlex.quote(a) for a in argv))
    with atomic_path(checkpoint) as tmp:
        torch.save(payload, tmp)
    print(f"checkpoint {res.checkpoint} after step {res.step} ({res.wall_s:.0f} s); validation:")
    for k, v in res.metrics.items():
        print(f"  {k:24s} {v:.4g}")
    return res
