"""The index at the end of a retrieval pipeline, and what it is fed."""

from sklearn.utils.validation import check_is_fitted

__all__ = ["final_index", "features_for_index"]


def _is_pipeline(estimator):
    return hasattr(estimator, "steps") and hasattr(estimator, "__getitem__")


def final_index(estimator):
    """The fitted index a retrieval system answers with.

    Parameters
    ----------
    estimator : Pipeline or index
        A fitted :class:`~sklearn.pipeline.Pipeline` whose final step is an
        index (anything with ``kneighbors``), or such an index itself.

    Returns
    -------
    index : the final step (or ``estimator`` itself).

    Raises
    ------
    TypeError
        If the final step is not an index.
    sklearn.exceptions.NotFittedError
        If the index is not fitted.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skfindkit import ExactIndex
    >>> pipe = make_pipeline(StandardScaler(), ExactIndex(n_neighbors=1)).fit([[0.0], [1.0]])
    >>> final_index(pipe)
    ExactIndex(n_neighbors=1)
    """
    index = estimator.steps[-1][1] if _is_pipeline(estimator) else estimator
    if not hasattr(index, "kneighbors"):
        where = "the final step of the pipeline" if index is not estimator else "the estimator"
        raise TypeError(
            f"Expected a fitted index (with kneighbors) or a pipeline ending with one; "
            f"{where} is a {type(index).__name__}."
        )
    check_is_fitted(index)
    return index


def features_for_index(estimator, X):
    """``X`` passed through every step before the final index (``X`` itself for an index).

    Parameters
    ----------
    estimator : Pipeline or index
        As :func:`final_index`.
    X : array-like or list
        Raw items in the form the pipeline's first step takes.

    Returns
    -------
    Xt : what the final index receives.
    """
    if _is_pipeline(estimator) and len(estimator.steps) > 1:
        return estimator[:-1].transform(X)
    return X
