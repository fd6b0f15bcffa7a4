"""The on-disk caches behind warm reference selection, and the MoE ranking rule."""

from __future__ import annotations

import git

from tools.repo.references import Addition, find_additions, score, type_facts
from tools.repo.workspace import RepoManager, commit_all
from tools.targets.optimum_intel.references import OptimumIntelReferences

CONFIGS = "optimum/exporters/openvino/model_configs.py"
REG = '@register_in_tasks_manager("{0}", *["text-generation"], library_name="transformers")\nclass {0}C(X):\n    pass\n'


def _register(root, repo, name, pr):
    path = root / CONFIGS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + REG.format(name))
    commit_all(repo, f"Add {name} (#{pr})")


def test_history_scan_is_cached_per_head_and_rescanned_when_head_moves(tmp_path, monkeypatch):
    root = tmp_path / "up"
    repo = git.Repo.init(root, initial_branch="main")
    _register(root, repo, "llama", 1)
    _register(root, repo, "densea", 2)
    rm = RepoManager(tmp_path / "data", freshness_s=0)  # every mirror() call fetches
    cache = tmp_path / "cache"
    profile = OptimumIntelReferences()
    assert [a.pr for a in find_additions(rm.mirror(str(root)), profile, cache)] == [2, 1]
    (cached,) = (cache / "references").glob("*.json")

    import tools.repo.references

    def no_scan(*a, **kw):
        raise AssertionError("the history was scanned again although HEAD did not move")

    with monkeypatch.context() as m:
        m.setattr(tools.repo.references, "_scan", no_scan)
        assert [a.pr for a in find_additions(rm.mirror(str(root)), profile, cache)] == [2, 1]

    _register(root, repo, "moeb", 3)  # upstream moves; the next fetch moves the mirror's HEAD
    assert [a.pr for a in find_additions(rm.mirror(str(root)), profile, cache)] == [3, 2, 1]
    (fresh,) = (cache / "references").glob("*.json")  # the scan of the old HEAD is dropped
    assert fresh != cached

    fresh.write_text("{half a fi")  # a killed writer's leftovers are recomputed, not trusted
    assert [a.pr for a in find_additions(rm.mirror(str(root)), profile, cache)] == [3, 2, 1]


def test_type_facts_are_reused_across_processes_only_with_a_cache_key(tmp_path):
    calls = []

    def kind_of(t):
        calls.append(t)
        return "moe" if "moe" in t else "dense"

    def base_of(t):
        return ("llama",)

    assert type_facts({"a", "bmoe"}, kind_of, base_of, tmp_path) == {"a": ("dense", ("llama",)),
                                                                      "bmoe": ("moe", ("llama",))}
    type_facts({"a"}, kind_of, base_of, tmp_path)
    assert sorted(calls) == ["a", "a", "bmoe"]  # no key: nothing kept on disk
    kind_of.cache_key = base_of.cache_key = "transformers-1.0"
    calls.clear()
    type_facts({"a", "bmoe"}, kind_of, base_of, tmp_path)
    type_facts({"a", "bmoe", "c"}, kind_of, base_of, tmp_path)
    assert sorted(calls) == ["a", "bmoe", "c"]  # only the new type is asked the second time
    kind_of.cache_key = base_of.cache_key = "transformers-2.0"
    calls.clear()
    type_facts({"a"}, kind_of, base_of, tmp_path)
    assert calls == ["a"]  # another transformers: asked again


def test_moe_changes_that_touched_the_patcher_rank_first_whatever_lineage_and_age():
    day = 86400
    newest = 1000 * day
    kinds = {"old_moe": "moe", "new_moe": "moe", "multi_a": "moe", "multi_b": "dense", "ssm": "ssm",
             "dense": "dense"}
    adds = [
        # an MoE change in the patcher: old, other lineage, not alone in its commit
        Addition(sha="a", timestamp=0, subject="", pr=1, model_types=["old_moe", "multi_b"],
                 kinds=["patcher", "registration"]),
        # an MoE registration without patcher work: new, same lineage, alone
        Addition(sha="b", timestamp=newest, subject="", pr=2, model_types=["new_moe"], kinds=["registration"]),
        # patcher work for another kind, and a dense change of the same lineage
        Addition(sha="c", timestamp=newest, subject="", pr=3, model_types=["ssm"], kinds=["patcher"]),
        Addition(sha="d", timestamp=newest, subject="", pr=4, model_types=["dense"], kinds=["registration"]),
    ]
    analysis = {"model_type": "x", "kind": "moe", "lineage": ["qwen2_moe"]}

    def base_of(t):
        return ("qwen2_moe",) if t in ("new_moe", "ssm", "dense") else ("mixtral",)

    ranked = sorted(adds, key=lambda a: -score(a, analysis, kinds.get, base_of, newest)[0])
    assert [a.pr for a in ranked] == [1, 2, 3, 4]
    points, why = score(adds[0], analysis, kinds.get, base_of, newest)
    assert "changed the model patcher" in why and "same family kind (moe)" in why
    # for a dense model the patcher earns nothing: the dense change of the same lineage leads
    dense = {"model_type": "x", "kind": "dense", "lineage": ["qwen2_moe"]}
    assert max(adds, key=lambda a: score(a, dense, kinds.get, base_of, newest)[0]).pr == 4
