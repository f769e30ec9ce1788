"""tqdm progress bars switched by an estimator's ``verbose`` parameter.

tqdm is imported on the first bar shown, not with skfindkit.
"""

__all__ = ["progress"]


def progress(iterable, *, verbose, desc, total=None, unit="it"):
    """Wrap ``iterable`` in a tqdm bar when ``verbose`` is truthy.

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    verbose : int or bool
        0/False returns ``iterable`` unchanged; anything else shows a bar.
    desc : str
        Label shown before the bar.
    total : int, default=None
        Length, when ``iterable`` has no ``len``.
    unit : str, default="it"
        Unit name shown in the bar.

    Returns
    -------
    iterable
    """
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False)
