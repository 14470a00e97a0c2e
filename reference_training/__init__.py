"""Reference trainer: a small ViT seq2seq model, MLE then reward tuning (python -m reference_training).

Needs the ``[train]`` extra (torch, matplotlib, tqdm): ``pip install -e '.[train]'`` from a clone.
"""

import importlib.util

try:
    import torch  # noqa: F401
    import tqdm  # noqa: F401

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("No module named 'matplotlib'", name="matplotlib")
except ImportError as err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"reference_training needs the [train] extra ({err.name or 'torch'} is missing): "
        "pip install 'task-rewards[train]' (from a clone: pip install -e '.[train]')"
    ) from err
