"""Small shared helpers (optional imports, progress bars, validation)."""

from ._optional import import_optional
from ._progress import progress

__all__ = ["import_optional", "progress"]
