"""Errors the faces turn into one-line messages and exit codes."""


class UserError(Exception):
    """Bad input from the user: unknown target, malformed config, unknown model.

    The CLI prints the message on one line and exits 2; nothing is written.
    """

    exit_code = 2


class EnvironmentProblem(Exception):
    """Something the machine lacks (a sandbox engine, a package, the network)."""

    exit_code = 3
