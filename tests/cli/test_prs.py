"""`onboard prs`: every target's records, the same model under two targets included."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent.cli.main import app
from tools.forge.local import RecordStore


def test_prs_json_lists_the_record_of_every_target(tmp_path):
    store = RecordStore(tmp_path)
    for target in ("optimum-intel", "veomni"):  # one model, two targets: two records, neither hides the other
        store.write(target=target, model_type="seed_oss", body="b", diff="d", title=f"Add seed_oss ({target})",
                    branch=f"onboard/{target}/seed_oss", remote="", base_rev="a", head_rev="b", url="",
                    verification={"checks": "3/3"})
    res = CliRunner().invoke(app, ["prs", "--data-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert sorted((r["target"], r["model_type"]) for r in got) == [("optimum-intel", "seed_oss"), ("veomni", "seed_oss")]
