"""task-rewards: exact, fast per-example task rewards for REINFORCE tuning.

Framework-agnostic (numpy + numba). Each ``X_reward(pred, gt, ...)`` scores
one example; ``X_reward_batch(preds, gts, ...)`` runs one compiled kernel over
a whole batch.
"""

from rewards import captioning, colorization, detection, panoptic
from rewards.detection import (
    class_weights_from_counts,
    coco_eval,
    map_reward,
    map_reward_batch,
    match_iou,
    match_iou_batch,
    recall_reward,
    recall_reward_batch,
)

from rewards.panoptic import PanopticQuality, pq_reward, pq_reward_batch
from rewards.captioning import DocumentFrequencies, cider_reward, cider_reward_batch, document_frequencies, tokenize
from rewards.colorization import colorfulness, colorfulness_batch, colorfulness_reward, colorfulness_reward_batch

__version__ = "0.1.0"
__all__ = [
    "captioning", "colorization", "detection", "panoptic",
    "class_weights_from_counts", "coco_eval", "map_reward", "map_reward_batch", "match_iou",
    "match_iou_batch", "recall_reward", "recall_reward_batch",
    "PanopticQuality", "pq_reward", "pq_reward_batch",
    "DocumentFrequencies", "cider_reward", "cider_reward_batch", "document_frequencies", "tokenize",
    "colorfulness", "colorfulness_batch", "colorfulness_reward", "colorfulness_reward_batch",
]
