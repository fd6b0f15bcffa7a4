from __future__ import annotations

from agent.llm.settings import LLMSettings
from agent.settings import Settings


def test_same_variables_as_the_main_settings(monkeypatch):
    monkeypatch.setenv("ONBOARD_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ONBOARD_LLM_API_KEY", "sk-abcdef")
    monkeypatch.setenv("ONBOARD_LLM_MODEL", "local-model")
    monkeypatch.setenv("ONBOARD_LLM_MAX_COST_USD", "0.5")
    s = LLMSettings()
    Settings()  # the main settings accept the LLM variables being set (they are not its fields)
    assert s.configured and s.base_url == "http://127.0.0.1:9/v1" and s.model == "local-model"
    assert s.api_key.get_secret_value() == "sk-abcdef"
    assert s.max_cost_usd == 0.5
    public = s.public_dict()
    assert public["api_key"] == "***" and "sk-abcdef" not in str(public)


def test_unconfigured_by_default(monkeypatch):
    monkeypatch.delenv("ONBOARD_LLM_BASE_URL", raising=False)
    assert not LLMSettings().configured and LLMSettings(model="local-gguf").price().input == 0.0
    assert LLMSettings(model="gpt-4o-mini").price().input > 0
