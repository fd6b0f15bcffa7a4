"""A new model type joins the lists the repository keeps of its family.

optimum-intel special-cases families in plain lists of model types: `SSM_MODELS` picks the model class
that carries conv/recurrent states, modeling_decoder.py keeps the full-context attention mask for the
hybrid types it lists, and the decoder tests gather the state-space types (and skip what OpenVINO cannot
do for them, such as beam search over recurrent states). A type that follows a family in its export must
follow it there too, or its model class and tests are the dense ones. This edit puts the new type right
after the reference type in every list of model-type strings (named or inline) that names the reference;
lists of other strings (tasks, (task, type) pairs) are left alone.
"""

from __future__ import annotations

import ast

from tools.source.python_edit import Edit, _checked, _lines

# the files whose model-type lists a family member joins
FILES = ("optimum/exporters/openvino/utils.py", "optimum/intel/openvino/modeling_decoder.py",
         "tests/openvino/test_decoder.py")


def _is_type_list(node: ast.AST, reference: str) -> bool:
    if not isinstance(node, (ast.List, ast.Tuple, ast.Set)) or not node.elts:
        return False
    values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
    # model types are identifiers-ish ("falcon_mamba", "qwen3_5_text"); tasks have dashes
    return reference in values and all(isinstance(v, str) and "-" not in v and " " not in v for v in values)


def family_lists(text: str, reference: str) -> list[ast.expr]:
    return [n for n in ast.walk(ast.parse(text)) if _is_type_list(n, reference)]


def join_family(text: str, reference: str, model_type: str) -> Edit:
    """Insert `model_type` after `reference` in every model-type list naming the reference."""
    lines = _lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        return starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))

    inserts, joined = [], []
    for node in family_lists(text, reference):
        if any(isinstance(e, ast.Constant) and e.value == model_type for e in node.elts):
            continue
        ref = next(e for e in node.elts if isinstance(e, ast.Constant) and e.value == reference)
        line = lines[ref.lineno - 1]
        start, end = offset(ref.lineno, ref.col_offset), offset(ref.end_lineno, ref.end_col_offset)
        quote = text[start]
        alone = line.strip().rstrip("\r\n") == f"{quote}{reference}{quote},"
        if alone:  # one element per line: a line of its own, same indentation
            indent = line[: len(line) - len(line.lstrip())]
            at = starts[ref.lineno]
            nl = "\r\n" if line.endswith("\r\n") else "\n"
            inserts.append((at, f"{indent}{quote}{model_type}{quote},{nl}"))
        else:
            inserts.append((end, f", {quote}{model_type}{quote}"))
        joined.append(ref.lineno)
    if not inserts:
        return Edit(False, text, f"no list naming {reference} without {model_type}")
    new = text
    for at, piece in sorted(inserts, reverse=True):
        new = new[:at] + piece + new[at:]
    new = _checked(new, f"joining {model_type} to the {reference} lists")
    return Edit(True, new, f"{model_type} joined {len(joined)} list(s) naming {reference} "
                           f"(lines {', '.join(map(str, sorted(joined)))})", min(joined))
