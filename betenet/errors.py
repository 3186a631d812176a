"""Error types for bad user input: each message names the offending input and the reason."""


class InputError(ValueError):
    """An input (file, structure, spectrum, dataset entry) that betenet cannot use.

    The message always starts with the name of the input (path or entry id) so that a
    batch job can report it on one line and carry on.
    """

    def __init__(self, subject, reason: str):
        self.subject = str(subject)  # the input's name: path, entry id, setting
        self.reason = reason
        super().__init__(f"{self.subject}: {reason}")
