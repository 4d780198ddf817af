from server.core.errors import InvalidInput, NotFound


class ScoredEventNotFound(NotFound):
    pass


class ChargebackFileInvalid(InvalidInput):
    pass
