"""The end of a sweep: summary.csv, sweep.png and a table of every job, best first.

Hydra throws each job's result away; this callback (configs/train.yaml, hydra.callbacks)
reads each job's summary.json instead, so it works the same with every launcher: basic,
joblib, submitit.
"""

from pathlib import Path

from hydra.experimental.callback import Callback

from runner import report

class SweepSummary(Callback):
    incomplete = 0  # jobs of the last sweep that did not complete; the CLI exits non-zero when > 0

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = report.find_runs([sweep_dir])
        if not runs:
            return
        rows, curves = report.build(runs)
        grouped = report.aggregate(rows) if report.has_repeats(rows) else None  # seed=0,1,2: mean ± std per setting
        report.write_outputs(rows, curves, sweep_dir, grouped)
        console = report.console()
        for table in report.to_tables(rows, f"sweep: {len(rows)} jobs, best first ({sweep_dir})"):
            console.print(table)
        if grouped:
            console.print(report.groups_to_table(grouped, f"{len(grouped)} settings x seeds: mean ± sample std, best first"))
        not_done = [r for r in rows if r["status"] != "completed"]
        if not_done:
            console.print(f"[red]{len(not_done)} of {len(rows)} jobs did not complete[/]: "
                          + ", ".join(f"job {r['job']} {r['status']}" for r in not_done))
        SweepSummary.incomplete = len(not_done)
        console.print(f"wrote {sweep_dir / 'summary.csv'}, {'groups.csv, ' if grouped else ''}sweep.png")
