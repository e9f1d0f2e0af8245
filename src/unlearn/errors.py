"""Errors shared by every layer.

`UnlearnInputError` means "the user gave us something we cannot use": the CLI turns it into a
one-line message and exit code 2. Anything else escaping the CLI is an internal failure (exit 1).
"""


class UnlearnInputError(ValueError):
    """Bad input from the user: an unknown name, a malformed file, a mismatched model."""


class DivergenceError(RuntimeError):
    """A method's loss became NaN or infinite; the input model is untouched."""

    def __init__(self, method: str, step: int, loss: float):
        super().__init__(f"{method}: loss became {loss} at step {step}; lower the learning rate")
        self.method, self.step, self.loss = method, step, loss
