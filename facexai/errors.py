"""One exception type per problem a user can cause; the CLI prints any of them on one line and exits 2."""


class FacexaiError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class DataNotFoundError(FacexaiError):
    """A data root, split folder or file is missing."""


class MalformedDataError(FacexaiError):
    """A file exists but is not in the expected format (header, row, pixels, label, image)."""


class EmptySplitError(FacexaiError):
    """A split has no images left after loading and filtering."""


class ClassMismatchError(FacexaiError):
    """A model, checkpoint or data set disagrees about the emotion classes."""


class ConfigError(FacexaiError):
    """An unknown name or an out-of-range setting."""


class RunNotFoundError(FacexaiError):
    """A run folder is missing or incomplete."""
