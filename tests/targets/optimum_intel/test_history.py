"""optimum-intel's onboarding commits and the comparison with upstream, on a repository built here."""

from __future__ import annotations

from pathlib import Path

import git

from tools.repo.workspace import commit_all
from tools.targets.base import Check, HistoryCase, JobContext
from tools.targets.optimum_intel.history import compare, history_cases
from tools.targets.optimum_intel.references import OptimumIntelReferences

CONFIGS = "optimum/exporters/openvino/model_configs.py"
TEXT = '["text-generation", "text-generation-with-past"]'


def reg(model_type: str, cls: str, base: str = "TextDecoderOnnxConfig", tasks: str = TEXT) -> str:
    return (f'@register_in_tasks_manager("{model_type}", *{tasks}, library_name="transformers")\n'
            f"class {cls}({base}):\n    pass\n\n\n")


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def history_repo(root: Path) -> git.Repo:
    repo = git.Repo.init(root, initial_branch="main")
    text = reg("llama", "LlamaOpenVINOConfig")
    write(root, CONFIGS, text)
    commit_all(repo, "base (#1)")
    text += reg("qwen3", "Qwen3OpenVINOConfig", "LlamaOpenVINOConfig")
    write(root, CONFIGS, text)
    commit_all(repo, "Support Qwen3 (#2)")
    text += reg("siglip", "SiglipOpenVINOConfig", tasks='["feature-extraction"]')
    write(root, CONFIGS, text)
    commit_all(repo, "Support SigLIP (#3)")
    text += reg("ouro", "OuroOpenVINOConfig")  # remote code: transformers has no class for it
    write(root, CONFIGS, text)
    commit_all(repo, "Support Ouro (#4)")
    text += "".join(reg(f"bulk{i}", f"Bulk{i}Config", tasks='["feature-extraction"]') for i in range(9))
    write(root, CONFIGS, text)
    commit_all(repo, "Remove the ONNX list (#5)")
    # A VLM and its text model in one change: the text model is what the onboarding makes.
    text += reg("gemma3n", "Gemma3nOpenVINOConfig", tasks='["image-text-to-text"]')
    text += reg("gemma3n_text", "Gemma3nTextOpenVINOConfig", "LlamaOpenVINOConfig")
    write(root, CONFIGS, text)
    commit_all(repo, "Support Gemma3n (#6)")
    return repo


def test_cases_are_text_generation_onboardings_newest_first_and_the_rest_say_why(tmp_path):
    history_repo(tmp_path / "up")
    cases, passed = history_cases(tmp_path / "up", OptimumIntelReferences(), tmp_path / "cache")
    assert [(c.model_type, c.pr, c.also_added) for c in cases] == [("gemma3n_text", 6, ["gemma3n"]),
                                                                     ("qwen3", 2, [])]
    why = {p.subject: p.reason for p in passed}
    assert why["Support SigLIP (#3)"].startswith("registers no text-generation model")
    assert "no causal-LM class for ouro" in why["Support Ouro (#4)"]
    assert "registers 9 types at once" in why["Remove the ONNX list (#5)"]
    assert why["base (#1)"].startswith("the first commit")


def _trees(tmp_path: Path, ours_base: str, ours_tasks: str, ours_files: dict[str, str]):
    """Upstream registered qwen3 on LlamaOpenVINOConfig with a test; ours as the arguments say."""
    up = tmp_path / "upstream"
    repo = git.Repo.init(up, initial_branch="main")
    write(up, CONFIGS, reg("llama", "LlamaOpenVINOConfig"))
    write(up, "tests/openvino/utils_tests.py", "MODEL_NAMES = {}\n")
    commit_all(repo, "base")
    base = repo.head.commit.hexsha
    write(up, CONFIGS, reg("llama", "LlamaOpenVINOConfig") + reg("qwen3", "Qwen3OpenVINOConfig", "LlamaOpenVINOConfig"))
    write(up, "tests/openvino/test_decoder.py", "ARCH = ['qwen3']  # upstream\n")
    write(up, "tests/openvino/utils_tests.py", "MODEL_NAMES = {'qwen3': 'hub/tiny-qwen3'}\n")
    commit_all(repo, "Support Qwen3 (#2)")
    up_diff = repo.git.diff(base, "HEAD")
    ours = tmp_path / "ours"
    ours_repo = git.Repo.clone_from(str(up), str(ours))
    ours_repo.git.checkout("-q", base)
    write(ours, CONFIGS, reg("llama", "LlamaOpenVINOConfig") + reg("qwen3", "Qwen3OpenVINOConfig", ours_base,
                                                                  tasks=ours_tasks))
    for rel, text in ours_files.items():
        write(ours, rel, text)
    ours_repo.git.add("-A")
    our_diff = ours_repo.git.diff("--cached", base)
    case = HistoryCase(model="qwen3", model_type="qwen3", sha=repo.head.commit.hexsha, subject="Support Qwen3 (#2)")
    ctx = JobContext(model_type="qwen3", work_dir=tmp_path / "work")
    return case, ours, up, our_diff, up_diff, ctx


def test_same_change_agrees_and_upstream_tests_run_on_ours_with_our_fixture_table(tmp_path):
    case, ours, up, our_diff, up_diff, ctx = _trees(
        tmp_path, "LlamaOpenVINOConfig", TEXT,
        {"tests/openvino/test_decoder.py": "ARCH = ['qwen3']  # ours\n",
         "tests/openvino/utils_tests.py": "MODEL_NAMES = {'qwen3': _create_tiny_qwen3_model()}\n"})
    ran = []

    def run_tests(files):
        ran.append((files, (ours / "tests/openvino/test_decoder.py").read_text(),
                    (ours / "tests/openvino/utils_tests.py").read_text()))
        return [Check(name="tests:tests/openvino/test_decoder.py", status="passed", stage="tests",
                      metrics={"counts": {"passed": 3}})]

    got = {a.point: a for a in compare(case, ours, up, our_diff, up_diff, ctx, run_tests)}
    assert got["family"].agree and got["family"].ours == got["family"].upstream == "LlamaOpenVINOConfig"
    assert got["tasks"].agree and got["files"].agree
    assert got["upstream_tests"].agree and "3 passed" in got["upstream_tests"].ours
    # upstream's test file replaced ours; the model-name table stayed ours (a local fixture, no Hub)
    assert ran == [(["tests/openvino/test_decoder.py"], "ARCH = ['qwen3']  # upstream\n",
                    "MODEL_NAMES = {'qwen3': _create_tiny_qwen3_model()}\n")]


def test_differences_are_named(tmp_path):
    case, ours, up, our_diff, up_diff, ctx = _trees(tmp_path, "TextDecoderOnnxConfig", '["text-generation"]', {})

    def run_tests(files):
        return [Check(name="tests:tests/openvino/test_decoder.py", status="failed", stage="tests",
                      detail="KeyError: 'qwen3'", metrics={"counts": {"failed": 1}})]

    got = {a.point: a for a in compare(case, ours, up, our_diff, up_diff, ctx, run_tests)}
    assert got["family"].agree is False
    assert got["family"].how == "we follow TextDecoderOnnxConfig, upstream LlamaOpenVINOConfig"
    assert got["tasks"].agree is False and got["tasks"].how == "only upstream: text-generation-with-past"
    assert got["files"].agree is False
    assert got["files"].how == "only upstream: tests/openvino/test_decoder.py, tests/openvino/utils_tests.py"
    assert got["upstream_tests"].agree is False and "KeyError" in got["upstream_tests"].how


def test_nothing_registered_is_disagreement_and_tests_are_not_run(tmp_path):
    case, ours, up, _, up_diff, ctx = _trees(tmp_path, "LlamaOpenVINOConfig", TEXT, {})
    git.Repo(ours).git.checkout("-q", "-f", "HEAD")  # our change dropped: the base as it was
    got = {a.point: a for a in compare(case, ours, up, "", up_diff, ctx, lambda files: 1 / 0)}
    assert got["family"].agree is False and got["family"].how == "we registered nothing"
    assert got["tasks"].agree is False
    assert got["upstream_tests"].agree is False and got["upstream_tests"].how == "nothing registered to test"


def test_tests_that_select_nothing_or_need_the_network_are_not_judged(tmp_path):
    case, ours, up, our_diff, up_diff, ctx = _trees(tmp_path, "LlamaOpenVINOConfig", TEXT, {})

    def run_tests(files):
        return [Check(name="tests:tests/openvino/test_decoder.py", status="failed", stage="tests",
                      detail="pytest test_decoder.py (tests of qwen3): 46 deselected (selection ran no test)"),
                Check(name="tests:tests/openvino/test_seq2seq.py", status="failed", stage="tests",
                      detail="1 error: requests.exceptions.ConnectionError: Max retries exceeded")]

    got = {a.point: a for a in compare(case, ours, up, our_diff, up_diff, ctx, run_tests)}
    assert got["upstream_tests"].agree is None and got["upstream_tests"].how == "test_seq2seq.py needs the network"


def test_strip_takes_the_model_out_of_head_and_keeps_what_later_changes_touched(tmp_path):
    from tools.targets.optimum_intel.history import strip

    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    write(up, CONFIGS, reg("llama", "LlamaOpenVINOConfig"))
    write(up, "tests/openvino/utils_tests.py", 'MODEL_NAMES = {\n    "llama": "hub/llama",\n}\n')
    write(up, "docs/source/openvino/models.mdx", "- Llama\n")
    commit_all(repo, "base")
    write(up, CONFIGS, reg("llama", "LlamaOpenVINOConfig")
          + '@register_in_tasks_manager(\n    "qwen3", *["text-generation"], library_name="transformers"\n)\n'
          + "class Qwen3OpenVINOConfig(LlamaOpenVINOConfig):\n    pass\n")
    write(up, "tests/openvino/utils_tests.py", 'MODEL_NAMES = {\n    "llama": "hub/llama",\n    "qwen3": "hub/qwen3",\n}\n')
    write(up, "docs/source/openvino/models.mdx", "- Llama\n- Qwen3\n")
    commit_all(repo, "Support Qwen3 (#2)")
    sha = repo.head.commit.hexsha
    # Later: a class built on qwen3's, and more models in the tests table.
    text = (up / CONFIGS).read_text() + reg("qwen3_moe", "Qwen3MoeConfig", "Qwen3OpenVINOConfig")
    write(up, CONFIGS, text)
    write(up, "tests/openvino/utils_tests.py",
          'MODEL_NAMES = {\n    "llama": "hub/llama",\n    "qwen3": "hub/qwen3",\n    "qwen3_moe": "hub/q",\n}\n')
    commit_all(repo, "Support Qwen3 MoE (#3)")
    work = tmp_path / "work"
    git.Repo.clone_from(str(up), str(work))
    case = HistoryCase(model="qwen3", model_type="qwen3", sha=sha, subject="Support Qwen3 (#2)")
    note = strip(work, case, up)
    configs = (work / CONFIGS).read_text()
    assert '"qwen3",' not in configs and "class Qwen3OpenVINOConfig(LlamaOpenVINOConfig)" in configs
    assert '"qwen3_moe"' in configs  # a later model built on the class is untouched
    ast_ok = compile(configs, CONFIGS, "exec")
    assert ast_ok is not None
    assert (work / "tests/openvino/utils_tests.py").read_text() == (
        'MODEL_NAMES = {\n    "llama": "hub/llama",\n    "qwen3_moe": "hub/q",\n}\n')
    assert (work / "docs/source/openvino/models.mdx").read_text() == "- Llama\n"
    assert note.startswith("HEAD with the registrations of qwen3 removed") and "2 files" in note


def test_a_test_run_stopped_for_time_is_not_judged(tmp_path):
    case, ours, up, our_diff, up_diff, ctx = _trees(tmp_path, "LlamaOpenVINOConfig", TEXT, {})

    def run_tests(files):
        return [Check(name="sandbox:tests", status="failed", stage="tests",
                      detail="job ended with timeout (exit None) and no report: ")]

    got = {a.point: a for a in compare(case, ours, up, our_diff, up_diff, ctx, run_tests)}
    assert got["upstream_tests"].agree is None and got["upstream_tests"].how.startswith("sandbox:tests timed out")
