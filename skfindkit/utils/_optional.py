"""Import optional backends lazily, with a one-line error that says how to install them.

The install command depends on how skfindkit itself was installed: from a
package index (``pip install 'skfindkit[audio]'``), from a checkout
(``pip install -e '/path/to/checkout[audio]'``: the package is not on a public
index under that name yet), or run from a source tree without installing.
"""

import importlib
import importlib.util
import json
import os
import shlex
from urllib.parse import unquote, urlparse

__all__ = ["Requirement", "import_optional", "install_command"]


def _checkout_of_this_package():
    """Folder holding pyproject.toml above the imported package, or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.isfile(os.path.join(root, "pyproject.toml")) else None


def install_command(extra):
    """The pip command that installs skfindkit's ``extra`` for this installation.

    Parameters
    ----------
    extra : str
        Name of the extra, e.g. ``"audio"``.

    Returns
    -------
    command : str
        ``pip install -e '/checkout[extra]'`` for an editable install or a
        source tree, ``pip install '/checkout[extra]'`` for a non-editable
        install from a local folder, ``pip install 'skfindkit[extra]'``
        otherwise.

    Examples
    --------
    >>> install_command("audio").startswith("pip install ")
    True
    """
    from importlib import metadata

    checkout = _checkout_of_this_package()  # the source tree this code runs from, if any
    try:
        direct_url = metadata.distribution("skfindkit").read_text("direct_url.json")
    except metadata.PackageNotFoundError:  # not installed: run from a source tree
        direct_url = None
    path, editable = None, False
    if direct_url:
        try:
            info = json.loads(direct_url)
        except ValueError:
            info = {}
        url = urlparse(info.get("url", ""))
        if url.scheme == "file" and os.path.isdir(unquote(url.path)):
            path = unquote(url.path)
            editable = bool(info.get("dir_info", {}).get("editable"))
    if checkout is not None and (
        path is None or os.path.realpath(path) != os.path.realpath(checkout)
    ):  # the running code is not what pip installed: install from where it runs
        path, editable = checkout, True
    if path is not None:
        flag = "-e " if editable else ""
        return f"pip install {flag}{shlex.quote(f'{path}[{extra}]')}"
    return f"pip install {shlex.quote(f'skfindkit[{extra}]')}"


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

    Raises
    ------
    ImportError
        One line: what is missing and the install command that works for
        how skfindkit was installed (see :func:`install_command`).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f"{module!r}" + (f" (package {package!r})" if package else "")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportError(
            f"{what} is needed here but cannot be imported ({reason}); "
            f"install the '{extra}' extra: {install_command(extra)}"
        ) from exc


class Requirement:
    """An optional library an estimator needs: its PyPI name, import name and extra.

    Estimators declare theirs once, as the class attribute ``_requires`` (one
    requirement or a tuple); :mod:`skfindkit.utils.discovery` derives every
    table of backends from these declarations.

    Parameters
    ----------
    library : str
        Distribution name on PyPI, e.g. ``"faiss-cpu"``.
    import_name : str
        Module to import, e.g. ``"faiss"``.
    extra : str
        The skfindkit extra that installs it, e.g. ``"faiss"``.

    Examples
    --------
    >>> from skfindkit.utils.discovery import Requirement
    >>> Requirement("numpy", "numpy", "numpy").available()
    True
    """

    __slots__ = ("library", "import_name", "extra")

    def __init__(self, library, import_name, extra):
        self.library = library
        self.import_name = import_name
        self.extra = extra

    def __repr__(self):
        return (f"Requirement(library={self.library!r}, import_name={self.import_name!r}, "
                f"extra={self.extra!r})")

    def __eq__(self, other):
        return isinstance(other, Requirement) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.library, self.import_name, self.extra)

    def available(self):
        """Whether the module can be found here (without importing it)."""
        try:
            return importlib.util.find_spec(self.import_name) is not None
        except ImportError:  # a parent package missing
            return False

    def load(self):
        """Import the module, or raise :func:`import_optional`'s one-line ImportError."""
        package = None if self.library == self.import_name else self.library
        return import_optional(self.import_name, self.extra, package=package)
