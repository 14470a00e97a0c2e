"""Run by test_coco_files under torchrun (2 processes, gloo): CocoEvaluator across ranks.

Each rank evaluates its DistributedSampler share of a generated COCO dataset
in batches, the evaluators are gathered with ``all_gather_object`` and merged;
rank 0 writes the merged result to the json path given as argument.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch.distributed as dist

from rewards import detection
from tests.coco_oracle import random_coco_dataset
from tests.test_coco_files import _as_dicts


def main(out_path: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    gt, dets = random_coco_dataset(np.random.default_rng(31), n_images=24)
    image_ids = sorted(im["id"] for im in gt["images"])
    preds, gts = _as_dicts(gt, dets, image_ids)
    evaluator = detection.CocoEvaluator(box_format="xywh", categories=[c["id"] for c in gt["categories"]])
    mine = list(range(rank, len(image_ids), world))
    for start in range(0, len(mine), 5):
        idx = mine[start : start + 5]
        evaluator.update(
            [preds[i] for i in idx], [gts[i] for i in idx], image_ids=[image_ids[i] for i in idx]
        )
    gathered: list = [None] * world
    dist.all_gather_object(gathered, evaluator)
    if rank == 0:
        sizes = [len(e) for e in gathered]
        merged = gathered[0].merge(*gathered[1:])
        result = merged.compute(per_image=True)
        with open(out_path, "w") as f:
            json.dump(
                {
                    "world_size": world,
                    "images_per_rank": sizes,
                    "stats": result.stats.tolist(),
                    "per_image": {str(k): v for k, v in result.per_image.items()},
                },
                f,
            )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
