"""The grading package's own error."""

__all__ = ["SetupError"]


class SetupError(Exception):
    """A problem with the grading's set-up, not with a student's work (no such assignment,
    an unreadable folder, a bad option): the command stops with exit status 2 and this
    message, before any student is scored."""
