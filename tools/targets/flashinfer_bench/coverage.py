"""The model's section and summary row in `docs/model_coverage.mdx`: which of its Definitions exist."""

from __future__ import annotations

import re

from tools.targets.flashinfer_bench import model as fbm
from tools.targets.flashinfer_bench.entry import architecture_label
from tools.targets.flashinfer_bench.names import parse_name

COVERAGE = "docs/model_coverage.mdx"
OP_TYPE = {"fused_add_rmsnorm": "rmsnorm", "moe_ds": "moe", "moe_renorm": "moe"}  # name family -> op_type


def coverage_section(entry: dict, a: dict, names: list[str], dataset: set[str], new: set[str]) -> tuple[str, str]:
    """(summary table row, model section) for docs/model_coverage.mdx."""
    present = [n for n in names if n in dataset or n in new]
    status = "✅ Fully covered" if len(present) == len(names) and not new else "🟡 Partial"
    row = f"| {entry['name']} | {architecture_label(a)} | {status} |"
    counts = fbm.layer_counts(a)
    lines = [f"## {entry['name']}", "",
             f"**Architecture**: {counts['layers']} decoder layers ({counts['dense']} dense, {counts['moe']} MoE), "
             f"{architecture_label(a)}. Generated for TP and EP given in the entry description.", "",
             "| Definition | Op Type | Status |", "|-----------|---------|:------:|"]
    for n in names:
        family = (parse_name(n) or ("?", {}, ""))[0]
        op = OP_TYPE.get(family, family)
        lines.append(f"| `{n}` | {op} | {'🟡' if n in new else ('✅' if n in dataset else '❌')} |")
    lines += ["", f"**Coverage**: {len(present)} / {len(names)} definitions present"
              + (f"; {len(new)} added by this change (workloads not yet collected)." if new else "."), "", "---", ""]
    return row, "\n".join(lines)


def upsert_coverage(text: str, row: str, section: str, name: str) -> str:
    if f"\n## {name}\n" in text:  # replace our own earlier section for this model
        text = re.sub(rf"\n## {re.escape(name)}\n.*?\n---\n", "\n" + section.rstrip("\n").rsplit("\n", 1)[0]
                      + "\n---\n", text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    rows = [m for m in re.finditer(r"^\| [^\n]* \| [^\n]* \| [^\n]* \|$", text, flags=re.M)
            if "Coverage |" not in m.group(0)]
    summary = [m for m in rows if m.start() < text.find("\n## ", text.find("## Summary") + 1)]
    existing = next((m for m in summary if m.group(0).startswith(f"| {name} |")), None)
    if existing:
        return text[:existing.start()] + row + text[existing.end():]
    if summary:
        at = summary[-1].end()
        return text[:at] + "\n" + row + text[at:]
    return text
