"""Training errors.

Training runs from the command line and from a worker task, never inside a request,
so these are plain exceptions rather than ``server.core.errors`` bases: that keeps
``edgeplane train`` usable with the training extra alone.
"""


class TrainingError(Exception):
    """Training cannot produce a model; the message says why."""


class DatasetError(TrainingError):
    """The simulated data cannot be split or joined as asked."""


class ConversionError(TrainingError):
    """A converted .tflite does not load in the device runtime or disagrees with Keras."""


class SigningKeyError(TrainingError):
    """The signing key cannot be created or read."""
