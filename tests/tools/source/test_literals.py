"""source_literals: element insertion and removal in Python literals, formatting preserved."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from tools.source.python_edit import EditError, Src
from tools.source.literals import insert_element, literal_keys, remove_element
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_sorted_set_gets_alphabetical_insert_and_is_idempotent():
    text = (FIXTURES / "optimum/exporters/openvino/utils.py").read_text()
    once = insert_element(text, "ONNX_SUPPORTED_ARCHITECTURES", "cwm")
    assert once.changed and "inserted" in once.message
    keys = literal_keys(once.text, "ONNX_SUPPORTED_ARCHITECTURES")
    assert keys == ["albert", "bert", "cwm", "gpt2", "seed_oss", "t5"]
    assert '    "bert",\n    "cwm",\n    "gpt2",\n' in once.text
    twice = insert_element(once.text, "ONNX_SUPPORTED_ARCHITECTURES", "cwm")
    assert not twice.changed and twice.text == once.text and "already" in twice.message


def test_unsorted_tuple_grows_at_end_of_leading_group_and_keeps_everything():
    text = (FIXTURES / "tests/openvino/test_decoder.py").read_text()
    before = literal_keys(text, "SUPPORTED_ARCHITECTURES")
    edit = insert_element(text, "OVModelForCausalLMIntegrationTest.SUPPORTED_ARCHITECTURES", "cwm")
    after = literal_keys(edit.text, "SUPPORTED_ARCHITECTURES")
    assert set(before) < set(after) and after.index("cwm") == before.index("mamba") + 1
    assert '        "mamba",\n        "cwm",\n        # remote code' in edit.text
    ast.parse(edit.text)
    # the filtering reassignment below the literal is untouched
    assert edit.text.count("SUPPORTED_ARCHITECTURES = tuple(a for a") == 1


def test_nearly_sorted_dict_follows_its_sorted_backbone():
    text = src('''
        NAMES = {
            "albert": "a",
            "bert": "b",
            "bge": "c",
            "beit": "d",
            "codegen": "e",
            "data2vec": "f",
            "gpt2": "g",
            "llama": "h",
            "mamba": "i",
            "t5": "j",
            "zamba2": "k",
            "glm": "l",
        }
    ''')
    edit = insert_element(text, "NAMES", "cwm", Src("_create_tiny_cwm_model()"))
    keys = literal_keys(edit.text, "NAMES")
    assert keys[keys.index("cwm") - 1:keys.index("cwm") + 2] == ["codegen", "cwm", "data2vec"]
    assert '    "cwm": _create_tiny_cwm_model(),\n' in edit.text


def test_dict_values_quotes_comments_and_parenthesised_entries():
    text = src('''
        class T:
            TABLE = {
                'vit': 0,  # no tokenizer
                'lfm2': (
                    2 if X else 0
                ),
            }
    ''')
    edit = insert_element(text, "TABLE", "cwm", {"model": 32})
    assert edit.text.endswith("        ),\n        'cwm': {'model': 32},\n    }\n")
    assert "'vit': 0,  # no tokenizer\n" in edit.text
    with pytest.raises(EditError):
        insert_element(text, "TABLE", "cwm")  # a dict needs a value


def test_missing_trailing_comma_and_closer_on_the_last_line():
    text = 'X = [\n    "b",\n    "a"]\nY = [\n    "q",\n    "p"\n]\n'
    x = insert_element(text, "X", "c")
    assert x.text.startswith('X = [\n    "b",\n    "a",\n    "c"]\n')
    y = insert_element(text, "Y", "o")
    assert '    "p",\n    "o"\n]\n' in y.text  # no trailing comma before either, none after


def test_single_line_and_empty_literals():
    text = 'A = ("x",)\nB = ()\nC = {"a", "c"}\nD = []\n'
    assert 'A = ("x", "y")' in insert_element(text, "A", "y").text
    assert 'B = ("y",)' in insert_element(text, "B", "y").text
    assert 'C = {"a", "b", "c"}' in insert_element(text, "C", "b").text
    assert 'D = [("t", "m")]' in insert_element(text, "D", ("t", "m")).text


def test_explicit_anchor_and_tuple_elements():
    text = 'L = [\n    ("text-generation", "gpt2"),\n    ("fill-mask", "bert"),\n]\n'
    edit = insert_element(text, "L", ("text-generation-with-past", "cwm"), after=("text-generation", "gpt2"))
    assert literal_keys(edit.text, "L")[1] == ("text-generation-with-past", "cwm")
    with pytest.raises(EditError):
        insert_element(text, "L", ("a", "b"), after=("nope", "x"))


def test_target_resolution():
    text = "class A:\n    T = ('x',)\n\n\nclass B:\n    T = ('y',)\n"
    with pytest.raises(LookupError, match="qualify"):
        insert_element(text, "T", "z")
    assert "T = ('y', 'z')" in insert_element(text, "B.T", "z").text
    with pytest.raises(LookupError):
        insert_element(text, "MISSING", "z")


def test_non_ascii_before_the_literal_on_its_line():
    text = 'ÉTAPES = (\n    "a",\n    "b",\n)\n'
    assert literal_keys(insert_element(text, "ÉTAPES", "c").text, "ÉTAPES") == ["a", "b", "c"]


def test_result_that_would_not_parse_raises():
    with pytest.raises(EditError, match="not valid Python"):
        insert_element('X = ["a"]\n', "X", Src("b c"))
    with pytest.raises(EditError, match="would not parse"):  # the comment would swallow the bracket
        insert_element('X = ["a"]\n', "X", Src("b  # note"))


def test_remove_element_from_set_is_idempotent():
    text = (FIXTURES / "optimum/exporters/openvino/utils.py").read_text()
    edit = remove_element(text, "ONNX_SUPPORTED_ARCHITECTURES", "seed_oss")
    assert edit.changed and literal_keys(edit.text, "ONNX_SUPPORTED_ARCHITECTURES") == ["albert", "bert", "gpt2", "t5"]
    assert len(edit.text.splitlines()) == len(text.splitlines()) - 1
    assert not remove_element(edit.text, "ONNX_SUPPORTED_ARCHITECTURES", "seed_oss").changed
    assert "S = set()" in remove_element('S = {"a"}\n', "S", "a").text
    assert 'L = ["a", "c"]' in remove_element('L = ["a", "b", "c"]\n', "L", "b").text


def test_non_finite_floats_render_as_python_that_evaluates_to_them():
    from tools.source.literals import render

    # a config's time_step_limit is (0.0, inf): `inf` alone is a NameError in the written fixture
    source = render({"time_step_limit": (0.0, float("inf")), "floor": float("-inf")})
    value = eval(source, {"__builtins__": {"float": float}})  # noqa: S307 - our own rendered literal
    assert value == {"time_step_limit": (0.0, float("inf")), "floor": float("-inf")}
    assert "nan" in render(float("nan")) and eval(render(float("nan")), {"float": float}) != 0


def test_an_inline_literal_is_named_by_where_it_starts():
    src = 'def f(x):\n    if x in {"a", "c"}:\n        return 1\n'
    lit = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Set))
    edit = insert_element(src, (lit.lineno, lit.col_offset), "b")
    assert edit.changed and '{"a", "b", "c"}' in edit.text
    assert literal_keys(edit.text, (lit.lineno, lit.col_offset)) == ["a", "b", "c"]
    with pytest.raises(LookupError, match="no literal starts at line 1"):
        insert_element(src, (1, 0), "b")
