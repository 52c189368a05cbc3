"""The one owner of "can this run continue, and with what?" (Lightning's `_CheckpointConnector`).

    runner train resume=outputs/2026-11-22/10-31-07 trainer.epochs=20

decide.py     fresh, continue, keep or refuse, from the run directory's status, its last.pt and what was asked
              (`decide` for RunDir's claim, `sweep_job_decision` for a resumed sweep's job, `resume_argument_problem`
              for the command line)
table.py      the resume table: each override applied (saying what it does) or refused (saying why)
plan.py       the continuing run planned from last.pt and the overrides (`plan_resume`), and restored into its
              state (`Resume.restore`)
advice.py     what a run whose last.pt cannot be read can do instead (`unresumable`, `fresh_command`)

Nothing here writes; run/rundir.py's RunDir writes what was decided. torch and Hydra are imported by the functions
that need them, so RunDir's claim reads no more than it did.
"""

from runner.run.resume.advice import fresh_command, unresumable
from runner.run.resume.decide import KEPT, Decision, decide, found_status, resume_argument_problem, sweep_job_decision
from runner.run.resume.plan import Resume, lifts, plan, plan_resume, read_checkpoint, set_optimizer_value
from runner.run.resume.table import RESUME_OVERRIDES, Row, resume_rule, shadowed, trainer_rules

__all__ = [
    "KEPT",
    "RESUME_OVERRIDES",
    "Decision",
    "Resume",
    "Row",
    "decide",
    "found_status",
    "fresh_command",
    "lifts",
    "plan",
    "plan_resume",
    "read_checkpoint",
    "resume_argument_problem",
    "resume_rule",
    "set_optimizer_value",
    "shadowed",
    "sweep_job_decision",
    "trainer_rules",
    "unresumable",
]
