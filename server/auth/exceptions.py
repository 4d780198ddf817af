from server.core.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthenticated


class InvalidCredentials(Unauthenticated):
    pass


class LoginRateLimited(TooManyRequests):
    pass


class UserNotFound(NotFound):
    pass


class UsernameTaken(Conflict):
    pass


class TokenNotFound(NotFound):
    pass


class RoleTooHigh(Forbidden):
    pass
