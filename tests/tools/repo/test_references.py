"""Reference selection, diff classification and pattern extraction on a repository built here."""

from __future__ import annotations

import git
import pytest

from tools.errors import UserError
from tools.repo.references import find_additions, select, structured_diff
from tools.repo.workspace import RepoManager, commit_all
from tools.targets.optimum_intel.references import OptimumIntelReferences

CONFIGS = "optimum/exporters/openvino/model_configs.py"
BASE = '''
@register_in_tasks_manager("llama", *["text-generation"], library_name="transformers")
class LlamaOpenVINOConfig(TextDecoderOpenVINOConfig):
    MIN_TRANSFORMERS_VERSION = "4.0"
'''


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _add_model(root, name, base, extra_files=()):
    text = (root / CONFIGS).read_text() + f'''

@register_in_tasks_manager(
    "{name}",
    *["text-generation", "text-generation-with-past"],
    library_name="transformers",
)
class {name.title()}OpenVINOConfig({base}):
    MIN_TRANSFORMERS_VERSION = "4.50.0"
    DUMMY_PKV_GENERATOR_CLASS = MistralDummyPastKeyValuesGenerator
'''
    _write(root, CONFIGS, text)
    _write(root, "docs/source/openvino/models.mdx", (root / "docs/source/openvino/models.mdx").read_text()
           + f"- {name.title()}\n")
    _write(root, "tests/openvino/test_decoder.py", (root / "tests/openvino/test_decoder.py").read_text()
           + f'ARCHS += ("{name}",)\n')
    for rel, body in extra_files:
        _write(root, rel, body)


@pytest.fixture
def history(tmp_path):
    root = tmp_path / "up"
    repo = git.Repo.init(root, initial_branch="main")
    _write(root, CONFIGS, BASE)
    _write(root, "optimum/exporters/openvino/utils.py", 'ONNX_SUPPORTED_ARCHITECTURES = {\n    "densea",\n    "bert",\n}\n')
    _write(root, "docs/source/openvino/models.mdx", "- LLaMA\n")
    _write(root, "tests/openvino/test_decoder.py", "ARCHS = ()\n")
    commit_all(repo, "Initial")
    _add_model(root, "densea", "LlamaOpenVINOConfig")
    _write(root, "optimum/exporters/openvino/utils.py", 'ONNX_SUPPORTED_ARCHITECTURES = {\n    "bert",\n}\n')
    commit_all(repo, "Add densea (#10)")
    _add_model(root, "moeb", "LlamaOpenVINOConfig",
               [("optimum/exporters/openvino/model_patcher.py", "class MoebPatcher(OVDecoderModelPatcher):\n    pass\n")])
    commit_all(repo, "Support moeb MoE (#11)")
    # re-wrapping an existing decorator is not a new model
    _write(root, CONFIGS, (root / CONFIGS).read_text().replace(
        '@register_in_tasks_manager("llama", *["text-generation"]',
        '@register_in_tasks_manager("llama", *["text-generation", "feature-extraction"]'))
    commit_all(repo, "More tasks for llama (#12)")
    # an unmerged pull request, visible only as refs/pull/13/head
    repo.git.checkout("-q", "-b", "feature")
    _add_model(root, "densec", "LlamaOpenVINOConfig")
    sha = commit_all(repo, "Add densec")
    repo.git.checkout("-q", "main")
    repo.git.update_ref("refs/pull/13/head", sha)
    repo.git.branch("-D", "feature")
    mirror = RepoManager(tmp_path / "cache").mirror(str(root))
    return mirror, tmp_path / "cache"


KINDS = {"densea": "dense", "moeb": "moe", "densec": "dense"}


def _select(mirror, cache, analysis, **kw):
    return select(mirror, OptimumIntelReferences(), analysis, cache, kind_of=lambda t: KINDS.get(t, "dense"),
                  base_of=lambda t: ("llama",), **kw)


def test_additions_found_and_rewraps_ignored(history):
    mirror, cache = history
    adds = find_additions(mirror, OptimumIntelReferences(), cache)
    # the file's first commit registers llama: that counts as an addition too
    assert [(a.pr, a.model_types) for a in adds] == [(11, ["moeb"]), (10, ["densea"]), (None, ["llama"])]
    assert "patcher" in adds[0].kinds and "patcher" not in adds[1].kinds


def test_selection_order_follows_the_analysis(history):
    mirror, cache = history
    dense = _select(mirror, cache, {"model_type": "new", "kind": "dense", "lineage": ["llama"]})
    assert dense[0].ref == "#10" and dense[-1].ref == "#11"  # the MoE change ranks last for a dense model
    moe = _select(mirror, cache, {"model_type": "new", "kind": "moe", "lineage": ["llama"]})
    assert moe[0].ref == "#11" and "changed the model patcher" in moe[0].why


def test_classification_and_patterns(history):
    mirror, cache = history
    ref = _select(mirror, cache, {"model_type": "new", "kind": "moe", "lineage": []}, k=1)[0]
    kinds = {f["path"]: f["kind"] for f in ref.files}
    assert kinds["optimum/exporters/openvino/model_patcher.py"] == "patcher"
    assert kinds[CONFIGS] == "registration" and kinds["tests/openvino/test_decoder.py"] == "tests"
    (cls,) = ref.patterns["config_classes"]
    assert cls["name"] == "MoebOpenVINOConfig" and cls["bases"] == ["LlamaOpenVINOConfig"]
    assert cls["attributes"]["MIN_TRANSFORMERS_VERSION"] == '"4.50.0"'
    assert ref.patterns["patchers"] == ["MoebPatcher"] and ref.patterns["docs"] == ["- Moeb"]
    densea = structured_diff(mirror, _select(mirror, cache, {"model_type": "x", "kind": "dense", "lineage": []},
                                             k=1)[0].sha, OptimumIntelReferences())
    assert densea.patterns["onnx_removed"] == ["densea"]


def test_explicit_pull_request_and_missing_one(history, tmp_path):
    mirror, cache = history
    (ref,) = _select(mirror, cache, {"model_type": "new", "kind": "dense", "lineage": []}, explicit=["#13"],
                     out_dir=tmp_path / "refs")
    assert ref.patterns["config_classes"][0]["name"] == "DensecOpenVINOConfig"
    assert (tmp_path / "refs").glob("*.diff")
    with pytest.raises(UserError, match="#404 does not exist"):
        _select(mirror, cache, {"model_type": "new", "kind": "dense", "lineage": []}, explicit=["404"])


def test_history_scan_reads_no_blob_outside_the_registry(tmp_path):
    """A checkout with blobs missing (a partial copy) must still scan: names only, no rename detection."""
    import git as gitmod

    from tools.repo.references import find_additions
    from tools.repo.workspace import commit_all
    from tools.targets.optimum_intel.references import OptimumIntelReferences

    root = tmp_path / "up"
    repo = gitmod.Repo.init(root, initial_branch="main")
    configs = root / "optimum/exporters/openvino/model_configs.py"
    configs.parent.mkdir(parents=True)
    reg = '@register_in_tasks_manager("{0}", *["text-generation"])\nclass {0}C(X):\n    pass\n'
    configs.write_text(reg.format("llama"))
    (root / "notes.txt").write_text("".join(f"line {i}\n" for i in range(40)))
    commit_all(repo, "base (#1)")
    configs.write_text(reg.format("llama") + reg.format("qwen3"))
    (root / "notes.txt").unlink()  # renamed with an edit: only content can tell it is a rename
    (root / "moved.txt").write_text("".join(f"line {i}\n" for i in range(41)))
    commit_all(repo, "Support Qwen3 (#2)")
    blob = repo.git.rev_parse("HEAD:moved.txt")
    (root / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # loose object: gone
    found = find_additions(root, OptimumIntelReferences(), tmp_path / "cache")
    assert [(a.pr, a.model_types) for a in found] == [(2, ["qwen3"]), (1, ["llama"])]
    assert found[0].kinds == ["other", "registration"]
