"""Training errors.

The ML code (``edgeplane train``, the retraining task) raises plain exceptions,
``TrainingError`` and its subclasses: they never reach a request. Training runs are
asked for and read through the API, so their errors are ``server.core.errors`` bases,
which set the HTTP status.
"""

from server.core.errors import InvalidInput, NotFound


class TrainingError(Exception):
    """Training cannot produce a model; the message says why."""


class DatasetError(TrainingError):
    """The simulated data cannot be split or joined as asked."""


class ConversionError(TrainingError):
    """A converted .tflite does not load in the device runtime or disagrees with Keras."""


class SigningKeyError(TrainingError):
    """The signing key cannot be created or read."""


class RunTakenOver(TrainingError):
    """The run was presumed dead and taken over while it trained; its result is dropped."""


class TrainingRunNotFound(NotFound):
    pass


class InvalidTrainingWindow(InvalidInput):
    pass
