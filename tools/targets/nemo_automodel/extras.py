"""The example recipe and the model-coverage page of an onboarded architecture.

The recipe is the base's own example with the checkpoint id swapped (its parallelism and backend settings
are the base's, which the reviewer is told); the page is the existing coverage page that names the
architecture, given a row for the recipe, or a short new page under the publisher's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = "docs/model-coverage"
EXAMPLES = "examples/llm_finetune"
ID_LINE = re.compile(r"^(\s*pretrained_model_name_or_path:\s*)(\S+)\s*$", re.M)
HF_ID = re.compile(r"huggingface\.co/([\w.-]+/[\w.-]+)\)")


def coverage_page(workspace: Path, arch: str) -> Path | None:
    root = workspace / DOCS
    pages = sorted(root.rglob("*.mdx")) if root.is_dir() else []
    named = [p for p in pages if f"`{arch}`" in p.read_text(encoding="utf-8") and p.name != "index.mdx"]
    return named[0] if named else None


def model_id(analysis: dict, workspace: Path, arch: str) -> str | None:
    """The checkpoint id: the config's own `_name_or_path`, else the first one the coverage page lists."""
    raw = analysis.get("raw_text_config") or {}
    name = raw.get("_name_or_path") or analysis.get("name_or_path")
    if isinstance(name, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return name
    page = coverage_page(workspace, arch)
    if page:
        found = HF_ID.findall(page.read_text(encoding="utf-8"))
        if found:
            return found[0]
    return None


def base_recipe(workspace: Path, base_dir: str) -> Path | None:
    found = sorted((workspace / EXAMPLES).rglob(f"{base_dir}_*.yaml")) if (workspace / EXAMPLES).is_dir() else []
    found = [p for p in found if ID_LINE.search(p.read_text(encoding="utf-8"))]
    preferred = [p for p in found if "hellaswag" in p.name]
    return (preferred or found or [None])[0]


def write_recipe(workspace: Path, base_dir: str, hf_id: str) -> tuple[str | None, str]:
    """(workspace-relative path or None, note)."""
    base = base_recipe(workspace, base_dir)
    if base is None:
        return None, f"no example recipe of {base_dir} to follow: recipe not written"
    text = base.read_text(encoding="utf-8")
    old_id = ID_LINE.search(text).group(2)
    text = text.replace(old_id, hf_id)
    slug = re.sub(r"\W+", "_", hf_id.split("/", 1)[1].lower()).strip("_")
    suffix = "_hellaswag" if "hellaswag" in base.name else "_finetune"
    path = base.parent / f"{slug}{suffix}.yaml"
    if path.exists():
        return None, f"{path.relative_to(workspace)} exists already: recipe not written"
    path.write_text(text, encoding="utf-8")
    return str(path.relative_to(workspace)), (f"recipe follows {base.relative_to(workspace)} "
                                              f"(its parallelism and backend settings) with {hf_id}")


def write_docs(workspace: Path, arch: str, hf_id: str, recipe: str | None, display: str) -> tuple[str | None, str]:
    page = coverage_page(workspace, arch)
    repo_url = "https://github.com/NVIDIA-NeMo/Automodel/blob/main/"
    row = f"| [{Path(recipe).name}]({repo_url}{recipe}) | SFT — {display} (NeMo AutoModel implementation) |\n" if recipe else ""
    if page is not None:
        text = page.read_text(encoding="utf-8")
        if recipe and Path(recipe).name in text:
            return None, f"{page.relative_to(workspace)} already lists the recipe"
        if row and "## Example Recipes" in text:
            head, sep, tail = text.partition("## Example Recipes")
            lines = tail.splitlines(keepends=True)
            last = max(i for i, ln in enumerate(lines) if ln.startswith("|"))  # the table's last row
            lines.insert(last + 1, row)
            text = head + sep + "".join(lines)
        elif row:
            text += f"\n## Example Recipes\n\n| Recipe | Description |\n|---|---|\n{row}"
        else:
            return None, f"{page.relative_to(workspace)} already names {arch}; nothing to add without a recipe"
        page.write_text(text, encoding="utf-8")
        return str(page.relative_to(workspace)), f"{page.relative_to(workspace)} gains the recipe row"
    org = hf_id.split("/", 1)[0].lower()
    path = workspace / DOCS / "llm" / org / f"{re.sub(r'[^a-z0-9]+', '-', hf_id.split('/', 1)[1].lower())}.mdx"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (f'---\ntitle: "{display}"\ndescription: ""\n---\n\n| | |\n|---|---|\n'
            f"| **Architecture** | `{arch}` |\n| **HF Org** | [{hf_id.split('/')[0]}](https://huggingface.co/{hf_id.split('/')[0]}) |\n\n"
            f"## Example HF Models\n\n| Model | HF ID |\n|---|---|\n| {display} | [`{hf_id}`](https://huggingface.co/{hf_id}) |\n")
    if row:
        body += f"\n## Example Recipes\n\n| Recipe | Description |\n|---|---|\n{row}"
    path.write_text(body, encoding="utf-8")
    return str(path.relative_to(workspace)), (f"new page {path.relative_to(workspace)}: add it to "
                                              "docs/fern/versions/nightly.yml by hand")
