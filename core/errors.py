"""One base class for every error about the user's input.

Scripts catch `UserError` (see flags.user_errors) and print one line naming the file or flag,
exiting with status 2; anything else is a bug of ours and keeps its traceback. Library errors
subclass it together with the built-in class callers may already catch (ValueError,
FileNotFoundError), so `except ValueError` keeps working.
"""


class UserError(ValueError):
    """Bad input from the user: a file, a flag, a combination of settings. The message names it."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named (or that a default points to) does not exist."""
