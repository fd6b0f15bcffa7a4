"""`web/apps/web/data/models.ts` as data: read its entries, render one in Prettier's style, insert or replace it.

The file is TypeScript, but its `models` array is the object-literal subset Prettier writes, so it is
edited as text and read as JSON: no node is needed to write an entry, only to type-check it afterwards.
"""

from __future__ import annotations

import json
import re

MODELS_TS = "web/apps/web/data/models.ts"
PRINT_WIDTH = 100


def ts_to_json(text: str) -> str:
    """The object-literal subset Prettier writes (bare keys, double quotes, trailing commas) as JSON."""
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    text = re.sub(r'([{,]\s*)([A-Za-z_$][\w$]*)\s*:', r'\1"\2":', text)
    return re.sub(r",(\s*[}\]])", r"\1", text)


def _array_span(text: str) -> tuple[int, int]:
    m = re.search(r"const models: Model\[\] = \[", text)
    if not m:
        raise ValueError(f"{MODELS_TS}: no `const models: Model[] = [` array")
    end = text.rindex("\n]")
    return m.end() - 1, end + 2


def read_entries(text: str, strict: bool = False) -> list[dict]:
    start, end = _array_span(text)

    def pairs(items):
        keys = [k for k, _ in items]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup and strict:
            raise ValueError(f"duplicate key(s) {', '.join(sorted(dup))}")
        return dict(items)

    return json.loads(ts_to_json(text[start:end]), object_pairs_hook=pairs)


def render_entry(entry: dict) -> str:
    """One array element in Prettier's style for this file (2 spaces, no semicolons, width 100)."""
    q = json.dumps
    lines = ["  {", f"    id: {q(entry['id'])},", f"    name: {q(entry['name'])},",
             f"    description: {q(entry['description'])},", "    modules: {"]
    for name, mod in entry["modules"].items():
        key = name if re.fullmatch(r"[A-Za-z_$][\w$]*", name) else q(name)
        lines.append(f"      {key}: {{")
        lines.append(f"        count: {mod['count']},")
        if mod.get("parent"):
            lines.append(f"        parent: {q(mod['parent'])},")
        lines.append(f"        type: {q(mod['type'])},")
        if "definitions" in mod:
            one = "        definitions: [" + ", ".join(q(d) for d in mod["definitions"]) + "],"
            if len(one) <= PRINT_WIDTH:
                lines.append(one)
            else:
                lines += ["        definitions: ["] + [f"          {q(d)}," for d in mod["definitions"]] + ["        ],"]
        lines.append("      },")
    lines += ["    },", "  },"]
    return "\n".join(lines) + "\n"


def upsert_entry(text: str, entry: dict) -> str:
    """Insert `entry` at the end of the array, or replace the entry with the same id in place."""
    rendered = render_entry(entry)
    m = re.search(rf'\n  \{{\n    id: "{re.escape(entry["id"])}",\n.*?\n  \}},\n', text, flags=re.S)
    if m:
        return text[:m.start() + 1] + rendered + text[m.end():]
    _, end = _array_span(text)
    close = end - 2
    return text[:close + 1] + rendered + text[close + 1:]
