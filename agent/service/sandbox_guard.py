"""The service runs code from strangers' requests: only a docker sandbox, unless the operator opts out.

The local backend isolates far less than a container does, so `onboard serve`
refuses it unless ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX is set, and `auto` is
pinned to docker at start, so an engine outage later fails jobs instead of
quietly falling back to local.
"""

from __future__ import annotations

from tools.errors import UserError
from agent.settings import Settings

SETTING = "ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX"


def serving_settings(settings: Settings, allow_local: bool) -> Settings:
    """The settings the service's jobs run with; UserError when they would use local without the opt-in."""
    if allow_local or settings.sandbox == "docker":
        return settings
    if settings.sandbox == "auto":
        from sandboxes.factory import engine_status

        client, why = engine_status()  # each target brings its own image; the engine is what must answer
        if client is not None:
            return settings.model_copy(update={"sandbox": "docker"})
        reason = f"ONBOARD_SANDBOX=auto would use the local backend here ({why})"
    else:
        reason = f"ONBOARD_SANDBOX is {settings.sandbox}"
    raise UserError(f"refusing to serve: {reason}, which isolates untrusted job code less than docker does; "
                    f"use ONBOARD_SANDBOX=docker, or set {SETTING}=1 to accept the weaker isolation")
