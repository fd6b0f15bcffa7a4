"""The repository's tests for a causal LM exported without a KV cache (patterns/no_cache.py).

test_decoder's test_compare_to_transformers asserts `ov_model.use_cache` and exports with the cache, while
its test_find_untested_architectures requires every type registered for "text-generation" to be tested.
Upstream has no table for decoders without a cache, so the first such type adds one,
SUPPORTED_ARCHITECTURES_WITHOUT_CACHE, with its own test (export with use_cache=False, logits, greedy
and beam generation of a padded batch against transformers) and counts it in the untested-architectures
check; later types only join the table. test_exporters_cli gets the ("text-generation", type) pair, whose
loader already passes use_cache=False for that task. test_export's ExportModelTest exports every
OVModelForCausalLM both with and without past, so the type stays out of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tools.source.python_edit import Edit, EditError, _checked
from tools.targets.optimum_intel.patch import INT8_TABLE, TESTS, UTILS_TESTS, PatchResult, PatchSpec, _keys, _try
from tools.targets.optimum_intel.placement import insert_entry

CLASS = "OVModelForCausalLMIntegrationTest"
TABLE = "SUPPORTED_ARCHITECTURES_WITHOUT_CACHE"
TEST = "test_compare_to_transformers_without_cache"
UNTESTED = "test_find_untested_architectures"
TESTED = "set(self.SUPPORTED_ARCHITECTURES)"
TOKENIZER_TABLE = "EXPECTED_NUMBER_OF_TOKENIZER_MODELS"

TABLE_BLOCK = f'''\
# decoders whose forward takes no past_key_values: exported for "text-generation" only, without a KV cache
{TABLE} = ("{{entry}}",)
{TABLE} = tuple(
    arch
    for arch in {TABLE}
    if arch in get_supported_model_for_library("transformers")
)
'''

TEST_BLOCK = f'''\
@parameterized.expand({TABLE})
def {TEST}(self, model_arch):
    model_id = MODEL_NAMES[model_arch]
    set_seed(SEED)
    ov_model = OVModelForCausalLM.from_pretrained(
        model_id, export=True, use_cache=False, ov_config=F32_CONFIG, device=OPENVINO_DEVICE
    )
    self.assertFalse(ov_model.use_cache)
    self.assertFalse(ov_model.stateful)
    expected_num_sdpa = self.EXPECTED_NUM_SDPA.get(model_arch, 0)
    num_sdpa = get_num_sdpa(ov_model.model)
    self.assertEqual(expected_num_sdpa, num_sdpa, f"Expected {{expected_num_sdpa}} SDPA ops, got {{num_sdpa}}")

    tokenizer = self.get_tokenizer(model_arch)
    tokens = tokenizer("This is a sample output", return_tensors="pt")
    ov_outputs = ov_model(**tokens)
    self.assertIsNone(ov_outputs.past_key_values)
    set_seed(SEED)
    transformers_model = AutoModelForCausalLM.from_pretrained(model_id)
    with torch.no_grad():
        transformers_outputs = transformers_model(**tokens)
    self.assertTrue(torch.allclose(ov_outputs.logits, transformers_outputs.logits, equal_nan=True, atol=1e-4))

    tokens = tokenizer(["The quick brown fox jumps over the", "This is me"], return_tensors="pt", padding=True)
    for model in (ov_model, transformers_model):
        model.generation_config.eos_token_id = None
        model.config.eos_token_id = None
    for num_beams in (1, 2):
        gen_config = GenerationConfig(max_new_tokens=30, min_new_tokens=30, num_beams=num_beams, do_sample=False)
        ov_outputs = ov_model.generate(**tokens, generation_config=gen_config)
        set_seed(SEED)
        transformers_outputs = transformers_model.generate(**tokens, generation_config=gen_config)
        self.assertTrue(
            torch.equal(ov_outputs, transformers_outputs),
            f"num_beams={{num_beams}}: OV output {{ov_outputs}}\\nTransformers output {{transformers_outputs}}",
        )
    del transformers_model
    del ov_model
    gc.collect()
'''


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:
        raise EditError(f"no class {name}")
    return cls


def _insert_member(text: str, after: ast.stmt, block: str, indent: str, what: str) -> Edit:
    """`block` (written at no indentation) inserted after the class member `after`, a blank line before it."""
    cr = "\r" if "\r\n" in text else ""
    lines = text.split("\n")
    rows = [""] + [f"{indent}{ln}{cr}" if ln.strip() else "" for ln in block.strip("\n").split("\n")]
    lines[after.end_lineno:after.end_lineno] = rows
    return Edit(True, _checked("\n".join(lines), what), what, after.end_lineno + 2)


def _assigns(cls: ast.ClassDef, name: str) -> list[ast.stmt]:
    return [s for s in cls.body if isinstance(s, (ast.Assign, ast.AugAssign)) and name in
            [getattr(t, "id", None) for t in (s.targets if isinstance(s, ast.Assign) else [s.target])]]


def add_table(text: str, model_type: str) -> Edit:
    """The no-cache table in the decoder test class, holding model_type, after the last statement that
    sets SUPPORTED_ARCHITECTURES (its version filter); a class that has the table gets the entry."""
    cls = _class(ast.parse(text), CLASS)
    if _assigns(cls, TABLE):
        return insert_entry(text, f"{CLASS}.{TABLE}", model_type)
    last = (_assigns(cls, "SUPPORTED_ARCHITECTURES") or [None])[-1]
    if last is None:
        raise EditError(f"{CLASS} sets no SUPPORTED_ARCHITECTURES")
    indent = " " * last.col_offset
    return _insert_member(text, last, TABLE_BLOCK.format(entry=model_type), indent, f"added {TABLE}")


def add_test(text: str) -> Edit:
    """The no-cache comparison test, right after test_compare_to_transformers (else at the class's end)."""
    cls = _class(ast.parse(text), CLASS)
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    if TEST in methods:
        return Edit(False, text, f"{TEST} already defined")
    after = methods.get("test_compare_to_transformers") or cls.body[-1]
    return _insert_member(text, after, TEST_BLOCK, " " * after.col_offset, f"added {TEST}")


def count_untested(text: str) -> Edit:
    """test_find_untested_architectures counts the no-cache table as tested."""
    func = next((n for n in _class(ast.parse(text), CLASS).body
                 if isinstance(n, ast.FunctionDef) and n.name == UNTESTED), None)
    if func is None:
        return Edit(False, text, f"no {UNTESTED}: nothing to count the table in")
    lines = text.split("\n")
    body = "\n".join(lines[func.lineno - 1:func.end_lineno])
    if TABLE in body:
        return Edit(False, text, f"{UNTESTED} already counts {TABLE}")
    rows = [i for i in range(func.lineno - 1, func.end_lineno) if TESTED in lines[i]
            and lines[i].lstrip().startswith("tested_architectures =")]
    if len(rows) != 1:
        raise EditError(f"{UNTESTED}: no single `tested_architectures = {TESTED}` line to extend")
    lines[rows[0]] = lines[rows[0]].replace(TESTED, f"{TESTED} | set(self.{TABLE})", 1)
    return Edit(True, _checked("\n".join(lines), f"counting {TABLE}"), f"{UNTESTED} counts {TABLE}", rows[0] + 1)


def register_no_cache_tests(workspace: Path, spec: PatchSpec, result: PatchResult) -> None:
    mt = spec.model_type
    decoder, export, cli = (f"{TESTS}/{f}" for f in ("test_decoder.py", "test_export.py", "test_exporters_cli.py"))
    if (workspace / decoder).exists():
        if _try(result, workspace, decoder, add_table, mt) is not None:
            _try(result, workspace, decoder, count_untested)
            _try(result, workspace, decoder, add_test)
        if spec.expected_sdpa:  # the test reads 0 for an absent entry, as test_compare_to_transformers does
            _try(result, workspace, decoder, insert_entry, f"{CLASS}.EXPECTED_NUM_SDPA", mt, spec.expected_sdpa)
    else:
        result.skipped.append(f"{decoder}: absent")
    if (workspace / export).exists():
        result.notes.append(f"{export}: not registered: ExportModelTest exports every OVModelForCausalLM with and "
                            "without past, and this model has no past")
    if not (workspace / cli).exists():
        result.skipped.append(f"{cli}: absent")
        return
    missing = []
    if spec.expected_int8 is None:
        missing.append(f"{INT8_TABLE}[{mt!r}] (the int8 weight count)")
    if spec.expected_tokenizers is None and _keys(workspace / cli, f"OVCLIExportTestCase.{TOKENIZER_TABLE}"):
        missing.append(f"{TOKENIZER_TABLE}[{mt!r}] (the tokenizer models optimum-cli converts)")
    if missing:
        if spec.measured:
            result.skipped.append(f"{cli}: its text-generation tests need {' and '.join(missing)}, unknown: "
                                  "not registered there")
        return
    _try(result, workspace, UTILS_TESTS, insert_entry, INT8_TABLE, mt, dict(spec.expected_int8))
    if spec.expected_tokenizers is not None:
        _try(result, workspace, cli, insert_entry, f"OVCLIExportTestCase.{TOKENIZER_TABLE}", mt,
             spec.expected_tokenizers)
    _try(result, workspace, cli, insert_entry, "OVCLIExportTestCase.SUPPORTED_ARCHITECTURES", ("text-generation", mt))
