from server.core.errors import Conflict, NotFound, Unauthenticated


class DeviceNotFound(NotFound):
    pass


class EnrollmentTokenNotFound(NotFound):
    pass


class EnrollmentRefused(Unauthenticated):
    pass


class DeviceRevoked(Conflict):
    pass
