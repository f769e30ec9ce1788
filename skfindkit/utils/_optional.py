"""Import optional backends lazily, with an error that says how to install them."""

import importlib

__all__ = ["import_optional"]


def import_optional(module, extra, *, package=None):
    """Import ``module`` or raise an ImportError naming the skfindkit extra.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"annoy"`` or ``"tensorflow.keras"``.
    extra : str
        Name of the skfindkit extra that installs it, e.g. ``"annoy"``.
    package : str, default=None
        PyPI distribution name when it differs from the module name.

    Returns
    -------
    module : module
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is required for this feature but could not be imported "
            f"({exc}). Install it with: pip install 'skfindkit[{extra}]'"
            + (f" (PyPI package {package!r})" if package else "")
        ) from exc
