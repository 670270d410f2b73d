"""Optional dependencies: the one error a missing one raises, naming the extra of bso-deploy that installs it.

The extras are declared in pyproject.toml: ``plots`` (matplotlib: the PNG figures of training runs,
benchmarks and reports) and ``digits`` (scikit-learn: the digits data set); ``onnx`` and ``lava`` have
their own checks where they are imported.
"""

from __future__ import annotations


class MissingExtraError(ImportError):
    """``what`` needs ``package``, which is not installed; the message says which extra installs it."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        super().__init__(f"{what} needs {package}: pip install 'bso-deploy[{extra}]'", name=package)
        self.extra = extra
