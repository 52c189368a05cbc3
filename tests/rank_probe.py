"""One of the gloo processes of tests/test_scaleout.py's check of what rank 0 alone decides, run as a module so that
the test forks it from the fork server (helpers/zygote.py: torch and runner imported once) instead of spawning a
fresh interpreter that imports them again:

    python -m rank_probe RANK WORLD PORT OUT    writes OUT/RANK.json: what decided_by_rank_0 and asked_of_rank_0 gave
"""

import json
import os
import sys
from pathlib import Path


def main(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    from runner.io.errors import RunnerError
    from runner.training import distributed

    # a rank left waiting fails the test after 20 s instead of hanging
    distributed.init(timeout_s=20)
    seen = {"value": distributed.decided_by_rank_0(lambda: f"rank {distributed.current().rank}'s")}
    try:
        # a bug on rank 0: every rank ends, none waits
        distributed.decided_by_rank_0(lambda: 1 / 0)
    except (ZeroDivisionError, RunnerError) as err:
        seen["error"] = f"{type(err).__name__}: {err}"
    asked = distributed.asked_of_rank_0(lambda: (lambda epoch: epoch * 10) if distributed.current().main else None)
    seen["asked"] = asked(3)
    seen["none"] = distributed.asked_of_rank_0(lambda: None)
    (Path(out) / f"{rank}.json").write_text(json.dumps(seen))
    # the group ends at exit (distributed.init registered leave): without it gloo aborted a process now and then


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
