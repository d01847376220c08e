"""The errors of label sets (re-exported by the semantic_labels package)."""

from core.errors import UserError


class LabelSetError(UserError):
    """A label set name, file or content is invalid; the message names the file and problem."""


class LabelSetFileNotFoundError(LabelSetError, FileNotFoundError):
    """A label set file does not exist (catchable as ValueError or FileNotFoundError)."""
