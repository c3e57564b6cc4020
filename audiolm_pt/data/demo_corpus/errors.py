"""The one exception a clip generator raises for bad input; the builder counts it by reason."""


class ClipError(Exception):
    """A clip could not be made; ``reason`` is a short stable key for corpus_info.json."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
