from server.core.errors import Conflict, InvalidInput, NotFound


class ModelNotFound(NotFound):
    pass


class ModelRejected(InvalidInput):
    """An uploaded model that cannot serve; the detail says why."""


class SigningKeyNotFound(NotFound):
    pass


class SigningKeyInUse(Conflict):
    pass


class ModelInUse(Conflict):
    pass
