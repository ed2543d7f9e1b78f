"""The one error kind of the tools: a problem the user can fix, told in one line."""


class ToolError(Exception):
    """What went wrong and, where it helps, what to do; the command prints it as one line, no traceback."""
