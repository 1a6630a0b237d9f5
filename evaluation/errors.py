"""The error raised for a problem the user can fix (bad arguments, missing inputs)."""


class EvaluationError(Exception):
    """A user-facing error: the CLI prints it as one ``error:`` line and exits with 2."""
