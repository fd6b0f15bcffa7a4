"""`onboard nightly --enqueue`: plan tonight's gap as the sweep does, then one Celery job per type.

The sweep's planner decides (already supported, open PR, recent attempt in
the shared Postgres store, a type some process works on, --limit); the
ledger's trigger key (night + target + type + inputs) makes a second enqueue
of the same night a no-op, and the subject slot keeps a type from running
twice. Workers anywhere then run the types, chat-ops first; each
job carries the night, the inputs and the budget (agent.scale.nightly_job).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from agent.nightly.settings import NightlySettings
from agent.nightly.store import open_store
from agent.nightly.sweep import Options, plan_gap
from agent.settings import Settings


def enqueue_nightly(opts: Options, settings: Settings, nightly: NightlySettings, *, device: str | None = None,
                    progress=lambda msg: None, now: float | None = None) -> dict:
    from agent.scale.settings import backend
    from tools.errors import UserError
    from tools.targets import get_target

    scale = backend()
    if not scale.distributed:
        raise UserError("--enqueue needs ONBOARD_BROKER_URL and ONBOARD_CHECKPOINT_URL (scale mode)")
    try:
        from agent.scale.ledger import PgJobQueue
        from agent.scale.publish import Publisher
    except ImportError as exc:
        raise UserError(f"scale mode is not installed ({exc.name} missing): pip install -r "
                        "requirements-scale.lock") from None
    target = get_target(opts.target, settings.caches)
    store = open_store(settings.data_dir, opts.target)  # Postgres: the URL is set
    with store.sweep_lock():  # not while a sweep of this target runs its types (or another enqueue plans)
        _, gap, _, inputs, planned = plan_gap(target, opts, settings, nightly, store, progress)
    store.close()
    night = datetime.fromtimestamp(now or datetime.now(timezone.utc).timestamp(), timezone.utc).date().isoformat()
    inputs_key = hashlib.sha256(inputs.model_dump_json().encode()).hexdigest()[:12]
    queue = PgJobQueue(scale.checkpoint_url)
    jobs = []
    for t in planned.to_run:
        job, created = queue.enqueue(
            trigger_key=f"nightly:{night}:{target.key}:{t}:{inputs_key}", subject=f"{target.key}|{t}",
            source="nightly", reply={},
            request={"model": t, "target": target.key, "publish": "auto", "by": "nightly", "authorize": None,
                     "repo": opts.repo, "device": device, "budget_s": nightly.per_type_timeout_s,
                     "nightly": {"night": night, "inputs": inputs.model_dump(), "max_prs": nightly.max_prs,
                                 "token_budget": nightly.token_budget}})
        jobs.append({"model_type": t, "job": job.id, "status": job.status, "created": created})
    sent = Publisher(queue, scale.broker_url).publish_queued()
    progress(f"gap: {len(gap.types)} types; enqueued {sum(j['created'] for j in jobs)}, "
             f"skipped {len(planned.rows)}; {sent} message(s) sent")
    queue.close()
    return {"night": night, "target": target.key, "jobs": jobs,
            "skipped": [{"model_type": r.model_type, "detail": r.detail} for r in planned.rows]}
