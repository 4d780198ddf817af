from server.core.errors import NotFound


class DeadLetterNotFound(NotFound):
    pass
