"""Position ids of RoBERTa-style causal LMs (xmod, xlm-roberta-xl, roberta-prelayernorm) at the OpenVINO runtime.

Their embeddings count positions the fairseq way when the caller passes none: tokens other than padding from
padding_idx + 1 after the cached ones, padding tokens padding_idx (`create_position_ids_from_input_ids`,
padding_idx = config.pad_token_id). transformers' generate() passes position ids of its own (cumsum of the mask
minus one, transformers#35044: the model's count cannot see the padding hidden in its cache), and the export keeps
the position_ids input, so OpenVINO's generate() gets exactly those. Only a call without position ids differs:
OVModelForCausalLM then counts them from 0, the PyTorch model from padding_idx + 1, and every logit moves (the
repository's test_compare_to_transformers calls both that way). The pattern gives OVModelForCausalLM.prepare_inputs
the model's own count for these model types, so each way of calling the model matches PyTorch called the same way.

Exporting without position_ids instead (the model counting in the graph from input_ids and the cache length) is
no alternative: cached decoding after left padding then adds the padding to every later position (on tiny models of
the three types the padded row's decode logits move by 0.1-0.3 against the model's own uncached forward), and
generate()'s positions are lost (0.08-0.3 on every row); transformers#35044 is the same finding.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from tools.targets.optimum_intel.patch import CodeBlock, ModuleBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import BASE_CONFIGS, MODEL_CONFIGS, module_classes, module_defs
from tools.targets.optimum_intel.patterns.moe import _modeling

MODELING_DECODER = "optimum/intel/openvino/modeling_decoder.py"
WITH_POSITION_IDS = "TextDecoderWithPositionIdsOpenVINOConfig"  # the base config class whose inputs hold them
COUNT = "create_position_ids_from_input_ids"  # transformers' name for the count, in every such model
MODELS = "PADDING_IDX_POSITION_MODELS"
HELPER = "_padding_idx_position_ids"
FUNCTION = "OVModelForCausalLM.prepare_inputs"
ANCHOR = "_get_past_length"  # prepare_inputs reads the cache length with it, before it builds position_ids
ANCHOR_CLASS = "OVBaseDecoderModel"  # the block goes right before OVModelForCausalLM, which uses it
MARKER = f"position_ids = {HELPER}("


def module_source(model_type: str) -> str:
    return f'''\
# Causal LMs whose embeddings, called without position ids, count them from padding_idx + 1 and give padding
# tokens padding_idx (RoBERTa's `create_position_ids_from_input_ids`, padding_idx = config.pad_token_id)
{MODELS} = ["{model_type}"]


def {HELPER}(input_ids: torch.Tensor, padding_idx: int, past_length: int) -> torch.Tensor:
    """The position ids such a model computes when it is given none: tokens other than padding count from
    padding_idx + 1 after the `past_length` cached ones, padding tokens keep padding_idx."""
    mask = input_ids.ne(padding_idx).long()
    return (torch.cumsum(mask, dim=1) + past_length) * mask + padding_idx
'''


PREPARE_SOURCE = f"""\
if position_ids is None and self.config.model_type in {MODELS}:
    # count them as the PyTorch model does without position ids (generate() passes its own, used as given)
    {MARKER}input_ids, self.config.pad_token_id, past_len)
"""


def _chain(workspace, name: str) -> list[str]:
    """The class and its bases as the workspace's config modules define them, nearest first."""
    classes = {**module_classes(workspace, BASE_CONFIGS), **module_classes(workspace, MODEL_CONFIGS)}
    out, todo = [], [name]
    while todo:
        cls = classes.get(todo.pop(0))
        if cls is not None and cls.name not in out:
            out.append(cls.name)
            todo += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    return out


@lru_cache(maxsize=128)
def counts_from_padding_idx(model_type: str) -> str | None:
    """The embeddings class of the model's transformers module that counts positions from padding_idx when given
    none (it calls `create_position_ids_from_input_ids` and takes padding_idx from config.pad_token_id), else None."""
    tree = _modeling(model_type)
    for cls in (n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)):
        calls = any(isinstance(c, ast.Call) and getattr(c.func, "attr", getattr(c.func, "id", None)) == COUNT
                    for c in ast.walk(cls))
        from_config = any(isinstance(a, ast.Assign) and ast.unparse(a.value) == "config.pad_token_id"
                          and any(getattr(t, "attr", None) == "padding_idx" for t in a.targets) for a in ast.walk(cls))
        if calls and from_config:
            return cls.name
    return None


def _has_anchor(workspace) -> bool:
    cls = module_defs(workspace, MODELING_DECODER).get("OVModelForCausalLM")
    method = next((f for f in getattr(cls, "body", [])
                   if isinstance(f, ast.FunctionDef) and f.name == "prepare_inputs"), None)
    return method is not None and any(isinstance(c, ast.Call) and getattr(c.func, "attr", None) == ANCHOR
                                      for c in ast.walk(method))


def _listed(workspace) -> list[str] | None:
    """The model types the workspace's list already names (None: no list yet)."""
    path = workspace / MODELING_DECODER
    for node in (ast.parse(path.read_text(encoding="utf-8")).body if path.exists() else []):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == MODELS for t in node.targets):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def _applies(ctx: PatternContext) -> str | None:
    embeddings = counts_from_padding_idx(ctx.model_type)
    if embeddings is None or WITH_POSITION_IDS not in _chain(ctx.workspace, ctx.base_class):
        return None
    if not _has_anchor(ctx.workspace):
        return None
    return (f"{embeddings} counts positions from padding_idx + 1 when given none, while {ctx.base_class} exports "
            "position_ids and OVModelForCausalLM counts them from 0: its prepare_inputs gets the model's own count")


def _edit(ctx: PatternContext) -> PatternEdit:
    listed = _listed(ctx.workspace)
    note = (f"{MODELING_DECODER}: OVModelForCausalLM.prepare_inputs counts positions from padding_idx + 1 for "
            f"{ctx.model_type} when the caller passes none, as {counts_from_padding_idx(ctx.model_type)} does")
    if listed:  # an earlier type wrote the helper: this one joins its list
        return PatternEdit(joins=[listed[0]], note=note)
    block = ModuleBlock(file=MODELING_DECODER, after=ANCHOR_CLASS, source=module_source(ctx.model_type))
    code = CodeBlock(file=MODELING_DECODER, function=FUNCTION, after_call=ANCHOR, source=PREPARE_SOURCE,
                     marker=MARKER)
    return PatternEdit(module_blocks=[block], code_blocks=[code], note=note)


PADDING_IDX_POSITIONS = Pattern("padding_idx_positions", "count positions from padding_idx + 1, as RoBERTa-style "
                                "embeddings do, when OVModelForCausalLM is called without position ids",
                                _applies, _edit)
