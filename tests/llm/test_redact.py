from __future__ import annotations

from agent.llm.redact import Redactor


def test_secrets_from_env_and_extra_are_masked_everywhere():
    r = Redactor(extra=["sk-extra-key-1"], environ={"GITHUB_TOKEN": "ghp_abcdef123", "HOME": "/root",
                                                     "MY_API_KEY": "key-987654", "DEBUG": "1", "X_TOKEN": "1",
                                                     "ONBOARD_LLM_MAX_TOKENS": "400000"})
    data = {"a": ["ghp_abcdef123 and sk-extra-key-1"], "b": {"c": "key-987654"}, "d": 3, "home": "/root"}
    assert r.data(data) == {"a": ["*** and ***"], "b": {"c": "***"}, "d": 3, "home": "/root"}
    assert r.text("1 + 1 = 400000") == "1 + 1 = 400000"  # short values and numbers are not secrets
