"""Settings of the LLM implementer, read from ONBOARD_LLM_* variables.

The endpoint fields use the same variable names as `agent.settings.Settings`
(ONBOARD_LLM_BASE_URL, ONBOARD_LLM_API_KEY, ONBOARD_LLM_MODEL), so both
classes always agree on whether an endpoint is configured.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = {"extra": "forbid"}

    input: float = 0.0
    output: float = 0.0


# Public list prices at the time of writing; an endpoint we do not know is
# priced at zero (local servers), and the token budget still bounds it.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4o": Price(input=2.50, output=10.0),
    "gpt-4.1": Price(input=2.0, output=8.0),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
}


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARD_LLM_", extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    temperature: float = 0.0
    # Per request; the remaining wall-time budget shortens it further.
    request_timeout_s: float = 120.0
    # Retries of one request on 429 / 5xx / timeouts, with exponential backoff.
    retries: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    # Budgets, checked before every call. SWE-agent's default cost cap is $3.
    max_steps: int = 60
    max_tokens: int = 400_000
    max_cost_usd: float = 3.0
    max_wall_s: float = 1800.0
    # Consecutive replies without a usable tool call before giving up (exit_format).
    max_format_errors: int = 3
    # Characters of one tool observation returned to the model.
    tool_output_chars: int = 12_000
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    def price(self) -> Price:
        return self.prices.get(self.model, Price())

    def public_dict(self) -> dict:
        """Plain data for trajectories and reports: the key is never included."""
        data = self.model_dump(mode="json", exclude={"api_key", "prices"})
        data["api_key"] = "***" if self.api_key else None
        data["price"] = self.price().model_dump()
        return data
