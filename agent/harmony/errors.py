"""The one error type of the harmony package."""


class HarmonyError(Exception):
    """Rendering or parsing failed; the message says where and what was expected.

    Parse errors carry `token_index`: the position in the token stream (0-based, counting
    every token given to the parser) where the problem was found.
    """

    def __init__(self, message: str, token_index: int | None = None) -> None:
        super().__init__(message)
        self.token_index = token_index
