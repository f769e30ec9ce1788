"""Small shared helpers (optional imports, progress bars, pipelines)."""

from ._optional import import_optional
from ._pipeline import features_for_index, final_index
from ._progress import progress

__all__ = ["features_for_index", "final_index", "import_optional", "progress"]
