from server.core.errors import Conflict, NotFound


class ClusterNotFound(NotFound):
    pass


class ClusterNameTaken(Conflict):
    pass
