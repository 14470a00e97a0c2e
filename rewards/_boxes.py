"""Box formats and the COCO box IoU, shared by every detection reward.

Internally every box is COCO's (x, y, width, height) in float64, because the
IoU must reproduce pycocotools' ``maskApi.c`` bbIou to the last bit: the same
intersection arithmetic on the same xywh numbers.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from rewards._numba import kernel

BoxFormat = Literal["xyxy", "xywh", "cxcywh", "yxyx"]
BOX_FORMATS: tuple[str, ...] = get_args(BoxFormat)


def check_box_format(box_format: str) -> None:
    if box_format not in BOX_FORMATS:
        raise ValueError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")


def to_xywh_inplace(boxes: np.ndarray, box_format: BoxFormat) -> np.ndarray:
    """Converts (N, 4) float64 boxes to COCO xywh in place (sizes are not checked here).

    Only for arrays the caller owns (e.g. a fresh concatenation): inputs are
    never modified.
    """
    check_box_format(box_format)
    if box_format == "xyxy":
        boxes[:, 2:] -= boxes[:, :2]
    elif box_format == "yxyx":
        boxes[:] = boxes[:, [1, 0, 3, 2]]
        boxes[:, 2:] -= boxes[:, :2]
    elif box_format == "cxcywh":
        boxes[:, :2] -= boxes[:, 2:] / 2
    return boxes


@kernel(inline=True)
def box_iou(dets: np.ndarray, d: int, gts: np.ndarray, g: int, crowd: bool) -> float:
    """IoU of xywh boxes ``dets[d]`` and ``gts[g]``; against a crowd box the union is the det's own area.

    Args: ``dets`` float64 (P, 4) and ``gts`` float64 (G, 4) xywh boxes, row
    indices ``d`` and ``g``, ``crowd``: whether ``gts[g]`` is a crowd region.

    Takes row indices rather than row views: views cost reference counting in
    the innermost loop.
    """
    w = min(dets[d, 2] + dets[d, 0], gts[g, 2] + gts[g, 0]) - max(dets[d, 0], gts[g, 0])
    if w <= 0:
        return 0.0
    h = min(dets[d, 3] + dets[d, 1], gts[g, 3] + gts[g, 1]) - max(dets[d, 1], gts[g, 1])
    if h <= 0:
        return 0.0
    inter = w * h
    det_area = dets[d, 2] * dets[d, 3]
    union = det_area if crowd else det_area + gts[g, 2] * gts[g, 3] - inter
    return inter / union
