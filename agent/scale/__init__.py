"""Scale mode: the job ledger and checkpoints on Postgres, delivery and retry on Celery.

Nothing here is imported unless ONBOARD_BROKER_URL or ONBOARD_CHECKPOINT_URL
is set (agent.scale.settings is the one cheap module the default path reads).
"""
