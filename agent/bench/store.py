"""Rows of a history bench on disk: one file per upstream commit, written by the case itself.

Layout under `<data_dir>/bench/history/<target>/<repo slug>/`: rows/<sha12>.json (the finished
row, with the inputs it was computed from), jobs/ and checkpoints.sqlite (the onboarding runs),
clone/ (the private clone revert-mode bases live in), compare/ (scratch trees), report.json and
report.html. A rerun skips rows finished with the same inputs and resumes the rest: their graph
threads have deterministic ids, so an interrupted onboarding continues from its last stage.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tools.targets.base import Agreement, HistoryCase

# The base used: the commit's parent; HEAD with the model taken out by the target; HEAD with the commit
# reverted whole (a target that cannot take one model out); neither (then the row says why).
Mode = Literal["parent", "head_without", "revert", "none"]
SLUG = re.compile(r"[^\w.-]+")


class CaseRow(BaseModel):
    case: HistoryCase
    mode: Mode
    mode_note: str = ""  # why this base (e.g. what failed at the parent)
    outcome: str  # the graph's outcome, or "error" / "not_reproducible"
    message: str = ""
    thread_id: str | None = None
    candidate: str | None = None  # the attempt compared (the passing one, else the closest)
    agreements: list[Agreement] = Field(default_factory=list)
    onboard_s: float = 0.0
    compare_s: float = 0.0
    tokens: int = 0
    inputs: dict = Field(default_factory=dict)
    finished_at: float = 0.0


def bench_root(data_dir: Path, target: str, repo: str) -> Path:
    name = SLUG.sub("_", repo.rstrip("/").removesuffix(".git")).strip("_")[-80:]
    return data_dir / "bench" / "history" / target / name


class RowStore:
    def __init__(self, root: Path):
        self.root = root

    def path(self, sha: str) -> Path:
        return self.root / "rows" / f"{sha[:12]}.json"

    def get(self, sha: str) -> CaseRow | None:
        try:
            return CaseRow.model_validate(json.loads(self.path(sha).read_text()))
        except (OSError, ValueError):
            return None  # missing or torn: the case is simply not finished

    def put(self, row: CaseRow) -> None:
        path = self.path(row.case.sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(row.model_dump_json(indent=1))
        tmp.replace(path)

    def finished(self, sha: str, inputs: dict) -> CaseRow | None:
        """The row computed from `inputs`, unless it is a crash (a crash is no result: it runs again)."""
        row = self.get(sha)
        return row if row is not None and row.inputs == inputs and row.outcome != "error" else None
