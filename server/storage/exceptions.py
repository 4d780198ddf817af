from server.core.errors import NotFound


class ObjectNotFound(NotFound):
    pass
