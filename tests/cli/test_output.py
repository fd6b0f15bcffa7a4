"""Progress lines print what they are given: bracketed names are text, not rich markup."""

from __future__ import annotations

from agent.cli import output


def test_a_bracketed_prefix_survives_in_progress_lines(capsys, monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(output, "err", Console(stderr=True, no_color=True, width=200))
    output.Progress().note("[optimum-intel] verify 42.0s")
    output.Progress().note("[bold]not a style[/bold]")
    err = capsys.readouterr().err
    assert "[optimum-intel] verify 42.0s" in err
    assert "[bold]not a style[/bold]" in err
