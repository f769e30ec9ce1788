"""Framework-independent handling of layer outputs shared by the deep extractors."""


__all__ = ["pool_features", "unknown_layer_error"]


def unknown_layer_error(layer, available):
    """ValueError for an unknown ``layer`` that lists the available names.

    Parameters
    ----------
    layer : str
        The name asked for.
    available : list of str
        Names the model has, in model order.

    Returns
    -------
    error : ValueError
    """
    return ValueError(f"layer={layer!r} is not a layer of the model; available layers: "
                      f"{list(available)}.")


def pool_features(out, pooling, *, channel_axis=-1):
    """Global-pool the spatial axes of a batch of layer outputs, then flatten.

    Parameters
    ----------
    out : ndarray of shape (n_samples, ...)
        Layer outputs of one batch.
    pooling : {"avg", "max"} or None
        Pool over every axis except the batch axis and ``channel_axis``;
        ``None`` keeps everything.
    channel_axis : int, default=-1
        Channel axis: -1 for channels-last (Keras), 1 for channels-first (MXNet).

    Returns
    -------
    features : ndarray of shape (n_samples, n_features)
    """
    if pooling is not None and out.ndim > 2:
        channel_axis = channel_axis % out.ndim
        axes = tuple(a for a in range(1, out.ndim) if a != channel_axis)
        out = out.mean(axis=axes) if pooling == "avg" else out.max(axis=axes)
    return out.reshape(out.shape[0], -1)
