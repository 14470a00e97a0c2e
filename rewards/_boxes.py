"""Box formats and the COCO box IoU, shared by every detection reward.

Internally every box is COCO's (x, y, width, height) in float64, because the
IoU must reproduce pycocotools' ``maskApi.c`` bbIou to the last bit: the same
intersection arithmetic on the same xywh numbers.
"""

from __future__ import annotations

import numba
import numpy as np

BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")


def check_box_format(box_format: str) -> None:
    if box_format not in BOX_FORMATS:
        raise ValueError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")


def to_xywh(boxes: np.ndarray, box_format: str) -> np.ndarray:
    """Converts (N, 4) float64 boxes to COCO xywh (sizes are not checked here)."""
    if box_format == "xywh":
        out = boxes
    elif box_format == "xyxy":
        out = np.column_stack(
            (boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        )
    elif box_format == "yxyx":
        out = np.column_stack(
            (boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0])
        )
    elif box_format == "cxcywh":
        out = np.column_stack(
            (boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2], boxes[:, 3])
        )
    else:
        check_box_format(box_format)
    return out


@numba.njit(cache=True, inline="always")
def box_iou(d: np.ndarray, g: np.ndarray, crowd: bool) -> float:
    """IoU of two xywh boxes; against a crowd box the union is ``d``'s own area."""
    w = min(d[2] + d[0], g[2] + g[0]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[3] + d[1], g[3] + g[1]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    inter = w * h
    det_area = d[2] * d[3]
    union = det_area if crowd else det_area + g[2] * g[3] - inter
    return inter / union
