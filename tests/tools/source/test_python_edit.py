"""source_edit: formatting-preserving block and bullet edits, and file writes."""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

import pytest

from tools.source.python_edit import EditError, edit_file, insert_block, insert_bullet
from tools.source.literals import insert_element, literal_keys
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_insert_block_after_a_class_and_before_an_assignment():
    text = src('''
        import x


        @deco
        class Base:
            A = 1


        # the table
        TABLE = {}
    ''')
    after = insert_block(text, "class New(Base):\n    B = 2\n", after="Base")
    assert "    A = 1\n\n\nclass New(Base):\n    B = 2\n\n\n# the table\nTABLE" in after.text
    assert not insert_block(after.text, "class New(Base):\n    pass\n", after="Base").changed
    before = insert_block(text, "def helper():\n    return 1\n", before="TABLE")
    assert "    A = 1\n\n\ndef helper():\n    return 1\n\n\n# the table\nTABLE = {}\n" in before.text
    with pytest.raises(LookupError):
        insert_block(text, "def f():\n    pass\n", after="Nope")
    with pytest.raises(EditError):
        insert_block(text, "def f(:\n", after="Base")


def test_bullets_sorted_case_insensitively_in_their_section():
    text = (FIXTURES / "docs/source/openvino/models.mdx").read_text()
    edit = insert_bullet(text, "CWM", section="[Transformers]")
    assert "- Cohere\n- CWM\n- Falcon\n" in edit.text
    assert not insert_bullet(edit.text, "cwm", section="[Transformers]").changed
    assert "- SEW\n- Stable" not in insert_bullet(text, "SeedOss", section="[Transformers]").text
    assert "- SAM\n- SeedOss\n- SEW\n" in insert_bullet(text, "SeedOss", section="[Transformers]").text
    assert "- Flux\n- Sana\n" in insert_bullet(text, "Sana", section="[Diffusers]").text  # unsorted: appended
    with pytest.raises(LookupError):
        insert_bullet(text, "X", section="[Timm]")


def test_edit_file_keeps_crlf_and_writes_only_on_change(tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes(b'X = [\r\n    "a",\r\n]\r\n')
    assert edit_file(path, insert_element, "X", "b").changed
    assert path.read_bytes() == b'X = [\r\n    "a",\r\n    "b",\r\n]\r\n'
    stamp = path.stat().st_mtime_ns
    assert not edit_file(path, insert_element, "X", "b").changed
    assert path.stat().st_mtime_ns == stamp


def test_real_sized_fixture_tree_parses_after_every_edit(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "ws")
    path = tmp_path / "ws/tests/openvino/test_exporters_cli.py"
    edit = edit_file(path, insert_element, "SUPPORTED_ARCHITECTURES", ("text-generation-with-past", "cwm"))
    ast.parse(path.read_text())
    assert edit.line == 13 and literal_keys(path.read_text(), "SUPPORTED_ARCHITECTURES")[-1][1] == "cwm"
