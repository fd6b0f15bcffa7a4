"""The nightly sweep: find every architecture a target does not support yet, try each, report.

gap.py discovers what to try, sweep.py runs it (K jobs, budgets, skips),
job.py is one type in its own process, status.py names each outcome,
report.py writes what people read, schedule.py runs it on a cron.
"""
