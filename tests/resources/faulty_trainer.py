"""A trainer entry point that misbehaves on purpose, for tests/resources/test_trainer_launch.py: run as
`python -m tests.resources.faulty_trainer` by the `trainer_launch` resource (its `module`), with `FAULTY_TRAINER`:
- `silent`: opens Dagster Pipes and exits 0 without reporting anything;
- `rank1`: rank 1 raises before training, the other ranks run the real trainer.
"""

import os
import sys

from dagster_pipes import open_dagster_pipes

from gan_assets.trainer import pipes_trainer

FAULT = os.environ.get("FAULTY_TRAINER", "")

if FAULT == "silent":
    with open_dagster_pipes() as pipes:
        pipes.log.info("exiting 0 without reporting")
    sys.exit(0)


def lose_the_device(extras, parallel, log):
    raise RuntimeError("rank 1 lost its device (test fault)")


if FAULT == "rank1" and os.environ.get("RANK") == "1":
    pipes_trainer.train_rank = lose_the_device  # main() looks train_rank up when it runs
sys.exit(pipes_trainer.main())
