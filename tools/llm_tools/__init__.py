"""The tools the LLM implementer may call, one module each; `TOOLS` is the only lookup."""

from __future__ import annotations

from tools.llm_tools import (create_file, finish, grep, list_dir, read_file, run_verification, str_replace,
                             view_references)
from tools.llm_tools.base import Tool, ToolContext, ToolRefused

TOOLS: dict[str, Tool] = {m.TOOL.name: m.TOOL for m in (
    list_dir, read_file, grep, str_replace, create_file, run_verification, view_references, finish)}

__all__ = ["TOOLS", "Tool", "ToolContext", "ToolRefused"]
