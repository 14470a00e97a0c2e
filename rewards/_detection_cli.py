"""``python -m rewards.detection GT.json RESULTS.json [--iou-type segm]``: pycocotools' summary, faster.

Prints pycocotools' ``summarize()`` lines (same text, same numbers); with
``--per-class`` a per-category AP / AP50 / AP75 / AR table; ``--json-out``
writes the stats, per-class and per-image values. Exit status 0, or 2 with
the error on stderr for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rewards._cli import load_numba_without_scipy


def _area_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH (e.g. 0:1024), got {text!r}") from None
    return lo, hi


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rewards.detection",
        description="COCO bbox or segm evaluation of a results file against an instances file "
        "(pycocotools' COCOeval numbers and printout).",
    )
    parser.add_argument("gt", help="COCO instances json (.json or .json.gz)")
    parser.add_argument(
        "results",
        help="COCO results json: a list of {image_id, category_id, bbox, score} "
        "(--iou-type segm: segmentation instead of bbox, an RLE dict)",
    )
    parser.add_argument(
        "--iou-type",
        choices=("bbox", "segm"),
        default="bbox",
        help="overlap of detections and GTs: boxes (default) or instance masks",
    )
    parser.add_argument(
        "--per-class", action="store_true", help="print a per-category AP / AP50 / AP75 / AR table"
    )
    parser.add_argument(
        "--max-dets",
        type=int,
        nargs=3,
        default=[1, 10, 100],
        metavar="N",
        help="the three max detections per image (default: 1 10 100)",
    )
    parser.add_argument(
        "--area-ranges",
        type=_area_range,
        nargs=4,
        default=None,
        metavar="LOW:HIGH",
        help="area ranges all, small, medium, large (default: 0:1e10 0:1024 1024:9216 9216:1e10)",
    )
    parser.add_argument(
        "--max-dets-rule",
        choices=("consistent", "pycocotools"),
        default="consistent",
        help="'pycocotools' reproduces its stats[0], which always reads maxDets=100 (cocoapi #558)",
    )
    parser.add_argument(
        "--json-out", metavar="OUT", help="write stats, per_class and per_image to this json file"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load_numba_without_scipy()
    from rewards.detection import coco_eval_files

    try:
        result = coco_eval_files(
            args.gt,
            args.results,
            iou_type=args.iou_type,
            max_dets=args.max_dets,
            area_ranges=args.area_ranges,
            max_dets_rule=args.max_dets_rule,
            per_image=args.json_out is not None,
        )
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.per_class:
        print(result.per_class_table())
    if args.json_out is not None:
        try:
            with open(args.json_out, "w") as f:
                json.dump(result.to_json(), f)
        except OSError as err:
            print(f"error: cannot write {args.json_out}: {err.strerror or err}", file=sys.stderr)
            return 2
    return 0
