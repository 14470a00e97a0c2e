"""Reading the json files every COCO format uses (instances, results, panoptic, captions)."""

from __future__ import annotations

import gc
import gzip
import json
import os
from typing import Any


def read_json_file(path: str | os.PathLike) -> Any:
    """The parsed json of ``path`` (gzip-compressed when the name ends with ``.gz``).

    Errors are ValueErrors that name the file: missing, unreadable, corrupt gzip, not json.

        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
        >>> _ = p.write_text('{"images": []}')
        >>> read_json_file(p)
        {'images': []}
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    # json builds no reference cycles, but its many new dicts trigger the cyclic collector
    # again and again: measured a third of the parse time on a 100k-result file.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with opener(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except (OSError, EOFError, UnicodeDecodeError) as err:  # missing, a directory, a corrupt .gz
        raise ValueError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    finally:
        if collecting:
            gc.enable()
