"""The `/onboard …` grammar shared by chat and GitHub comments.

Text from chat and issues is untrusted: it only selects one of these
commands, with arguments that must look like a model_type, a Hub id or a job
id. Nothing here (or downstream) executes it or hands it to a shell; paths
are refused so a model argument cannot name a file on the service's machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LEN = 200
PREFIX = "/onboard"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_JOB = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

HELP = """`/onboard MODEL [--target T|all] [--approve] [--dry-run]` onboard MODEL (a model_type or a Hub id org/name);
  `--target all`: one job per target, reported as one table
`/onboard status JOB`   state, stage and result of a job (job id or thread id)
`/onboard approve JOB`  publish a verified change that waits for approval
`/onboard cancel JOB`   stop a queued, running or waiting job
`/onboard help`         this text
Chat runs wait for approval before publishing unless `--approve` is given; `--dry-run` never publishes."""


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Run:
    model: str
    target: str
    approve: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class Status:
    job: str


@dataclass(frozen=True)
class Approve:
    job: str


@dataclass(frozen=True)
class Cancel:
    job: str


@dataclass(frozen=True)
class Help:
    pass


Command = Run | Status | Approve | Cancel | Help


def find_command(text: str | None) -> str | None:
    """The first line of an issue or comment that starts with `/onboard`, if any."""
    for line in (text or "").splitlines():
        line = line.strip()
        if line == PREFIX or line.startswith(PREFIX + " "):
            return line
    return None


def parse(text: str, known_targets: set[str], default_target: str) -> Command:
    text = (text or "").strip()
    if len(text) > MAX_LEN:
        raise CommandError(f"command longer than {MAX_LEN} characters")
    words = text.split()
    if words and words[0] == PREFIX:
        words = words[1:]
    if not words or words[0] in ("help", "--help", "-h"):
        return Help()
    verb = words[0]
    if verb in ("status", "approve", "cancel"):
        if len(words) != 2 or not _JOB.fullmatch(words[1]):
            raise CommandError(f"usage: /onboard {verb} JOB")
        return {"status": Status, "approve": Approve, "cancel": Cancel}[verb](words[1])
    return _parse_run(words, known_targets, default_target)


def _parse_run(words: list[str], known_targets: set[str], default_target: str) -> Run:
    model, rest = words[0], words[1:]
    if not _MODEL.fullmatch(model) or ".." in model:
        raise CommandError(f"{model!r} is not a model_type or a Hub id (org/name)")
    target, approve, dry_run = default_target, False, False
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in ("--target", "-t"):
            if i + 1 >= len(rest):
                raise CommandError("--target needs a value")
            target, i = rest[i + 1], i + 2
            continue
        if word.startswith("--target="):
            target = word.split("=", 1)[1]
        elif word == "--approve":
            approve = True
        elif word == "--dry-run":
            dry_run = True
        else:
            raise CommandError(f"unknown option {word[:40]!r}")
        i += 1
    if target not in known_targets and target != "all":
        raise CommandError(f"unknown target {target[:40]!r}; known: {', '.join(sorted(known_targets))}, or all")
    return Run(model=model, target=target, approve=approve, dry_run=dry_run)
