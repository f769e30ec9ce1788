"""tqdm progress bars switched by an estimator's ``verbose`` parameter.

tqdm is imported on the first bar shown, not with skfindkit.
"""

__all__ = ["progress"]


def progress(iterable, *, verbose, desc, total=None, unit="it", warmup=False):
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
    warmup : bool, default=False
        The first step may include one-time work (importing, compiling numba
        kernels): while it runs the bar shows the elapsed time and no
        estimate of the time left, which one slow step would make absurd.

    Returns
    -------
    iterable
    """
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    if not warmup:
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False)
    return _after_warmup(tqdm, iterable, desc, total, unit)


def _after_warmup(tqdm, iterable, desc, total, unit):
    """Yield ``iterable``'s items; a bar without an ETA until the first one is done."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    items = iter(iterable)
    try:
        first = next(items)
    except StopIteration:
        return
    setup = tqdm(total=total, unit=unit, leave=False, bar_format="{desc} {elapsed}",
                 desc=f"{desc}: first {unit}, with one-time setup (imports, compiling)")
    try:
        yield first  # the caller works on it before asking for the next one
    finally:
        setup.close()
    with tqdm(total=total, desc=desc, unit=unit, leave=False, initial=1) as bar:
        for item in items:
            yield item
            bar.update(1)
