"""Checked by mypy (see pyproject's [tool.mypy]), not run by pytest: the public API's return types.

Each assignment below must type-check as written; a regression (an `Any`, a union where a flag
decides the type) makes `make lint` fail.
"""

import numpy as np

import rewards
from rewards import detection, panoptic

gt = {"boxes": [[0.0, 0.0, 10.0, 10.0]], "labels": [1]}
pred = {"boxes": [[0.0, 0.0, 10.0, 10.0]], "scores": [0.9], "labels": [1]}

ap: float = detection.map_reward(pred, gt)
recall: float = rewards.recall_reward(pred, gt)
batch: np.ndarray = detection.map_reward_batch([pred], [gt])
seg = np.zeros((4, 4, 2), np.int64)
pq: float = panoptic.pq_reward(seg, seg, things={1}, stuffs={2})
