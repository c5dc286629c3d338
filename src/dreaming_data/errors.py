"""The one exception type for user mistakes: printed as one line, never as a traceback."""


class UserError(Exception):
    """Bad input from the user (a params key, a data file, an archive): say what and where, in one line."""
