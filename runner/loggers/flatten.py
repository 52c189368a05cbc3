"""A nested config or record as {dotted key: scalar}: what TensorBoard's hparams and MLflow's params take."""


def flatten(tree, prefix=""):
    """{dotted key: int, float, str or bool}; lists and nulls as their text."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = value
        else:  # lists and nulls
            out[f"{prefix}{key}"] = str(value)
    return out
