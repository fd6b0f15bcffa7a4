"""Job processes as the sweep sees them: started, polled, stopped when over budget.

Processes come from a forkserver that imported the heavy stack once (torch,
transformers, the graph), so a job starts in a fraction of a second instead of
paying those imports for each of ~70 types on a 2-core machine.
"""

from __future__ import annotations

import json
import multiprocessing
import time

from agent.nightly import job, status

PRELOAD = ["agent.nightly.job", "agent.graph.run", "agent.graph.request", "tools.hf.config", "tools.tiny.model",
           "tools.targets.optimum_intel.target", "transformers", "torch"]


def context():
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
    except ValueError:  # platforms without forkserver
        ctx = multiprocessing.get_context("spawn")
    return ctx


def _noop() -> None:
    pass


def warm(ctx) -> float:
    """Start the forkserver (its preload imports take seconds) before any type's budget starts ticking."""
    start = time.monotonic()
    p = ctx.Process(target=_noop, name="nightly-warmup", daemon=True)
    p.start()
    p.join(300)
    return time.monotonic() - start


class ProcessHandle:
    def __init__(self, ctx, spec: job.JobSpec, budget_s: float, clock=time.monotonic):
        self.spec, self.budget_s, self.clock = spec, budget_s, clock
        self.model_type = spec.model_type
        self.recorded = False
        for stale in (job.result_path(spec.out_dir, spec.model_type), job.progress_path(spec.out_dir, spec.model_type)):
            stale.unlink(missing_ok=True)
        self.started = clock()
        self.proc = ctx.Process(target=job.main, args=(spec,), name=f"nightly-{spec.model_type}", daemon=True)
        self.proc.start()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def done(self) -> bool:
        return not self.proc.is_alive()

    def over_budget(self) -> bool:
        return self.elapsed > self.budget_s

    def _progress(self) -> dict:
        try:
            return json.loads(job.progress_path(self.spec.out_dir, self.model_type).read_text())
        except (OSError, ValueError):
            return {}

    def result(self) -> status.Row:
        """The job's own row; when the process died without one, a row that says so.

        `recorded` tells the sweep whether the job already stored the attempt itself.
        """
        self.proc.join()
        path = job.result_path(self.spec.out_dir, self.model_type)
        if path.exists():
            self.recorded = True
            return status.Row.model_validate_json(path.read_text())
        self.recorded = False
        seen = self._progress()
        node = seen.get("node")
        running = status.running_after(node) if node else ("intake" if seen.get("thread_id") else "prepare")
        row = status.from_state(self.model_type, {"thread_id": seen.get("thread_id")},
                                llm_configured=self.spec.llm_configured,
                                error={"node": running, "message": f"job process died (exit code "
                                                                   f"{self.proc.exitcode}) in {running}"})
        return self._finish(row)

    def stop(self) -> status.Row:
        """Over budget: SIGTERM (the sandbox kills its own group), then SIGKILL."""
        self.proc.terminate()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.recorded = False
        seen = self._progress()
        row = status.timeout(self.model_type, self.budget_s, seen.get("node"), thread_id=seen.get("thread_id"))
        return self._finish(row)

    def abandon(self) -> None:
        """The sweep is being interrupted: stop without recording an attempt (the next sweep resumes it)."""
        self.proc.terminate()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

    def _finish(self, row: status.Row) -> status.Row:
        row.inputs = self.spec.inputs.model_dump()
        row.seconds = round(self.elapsed, 2)
        row.finished_at = time.time()
        return row
