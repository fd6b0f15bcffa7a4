"""The `/onboard` grammar: commands parse, anything else is refused before it reaches a job."""

from __future__ import annotations

import pytest

from agent.service.commands import Approve, Cancel, CommandError, Help, Run, Status, find_command, parse

TARGETS = {"optimum-intel"}


def p(text):
    return parse(text, TARGETS, "optimum-intel")


def test_run_with_options():
    assert p("/onboard seed_oss --target optimum-intel --approve") == Run("seed_oss", "optimum-intel", True, False)
    assert p("Qwen/Qwen3-8B --dry-run") == Run("Qwen/Qwen3-8B", "optimum-intel", False, True)
    assert p("/onboard llama --target=optimum-intel") == Run("llama", "optimum-intel")


def test_verbs_and_help():
    assert p("/onboard status j123") == Status("j123")
    assert p("approve optimum-intel-llama-abc") == Approve("optimum-intel-llama-abc")
    assert p("/onboard cancel j1") == Cancel("j1")
    assert p("/onboard") == Help() and p("/onboard help") == Help() and p("") == Help()


@pytest.mark.parametrize("text", [
    "/onboard ../../etc/passwd", "/onboard /etc/passwd", "/onboard ~root/x", "/onboard a/b/c",
    "/onboard llama; rm -rf /", "/onboard $(id)", "/onboard `id`", "/onboard llama --target nope",
    "/onboard llama --exec x", "/onboard llama --target", "/onboard status", "/onboard status a b",
    "/onboard " + "x" * 300, "/onboard ./config.json",
])
def test_untrusted_text_is_refused(text):
    with pytest.raises(CommandError):
        p(text)


def test_find_command_takes_the_first_onboard_line():
    body = "Please add this.\n  /onboard seed_oss --dry-run\n/onboard other"
    assert find_command(body) == "/onboard seed_oss --dry-run"
    assert find_command("/onboarding is fun") is None and find_command(None) is None
