"""Evaluation of learned representations: kNN, linear probing and fine-tuning (lightly's
``utils.benchmarking``).

* :func:`knn_predict`, :func:`knn_scores`, :func:`knn_accuracy`: the weighted kNN vote of
  InstDisc as functions (:mod:`.knn`).
* :class:`BenchmarkModule`: a LightningModule base class logging kNN accuracy every epoch.
* :class:`KNNClassifier`, :class:`LinearClassifier`, :class:`FinetuneClassifier`: evaluation
  LightningModules around a pretrained model, logging ``val_top{k}``.
* :class:`OnlineLinearClassifier`: a linear probe trained inside an SSL LightningModule.
* :func:`mean_topk_accuracy`: the top-k accuracy they log (:mod:`.topk`).
"""

from __future__ import annotations

from selfsup.utils.benchmarking.benchmark_module import BenchmarkModule
from selfsup.utils.benchmarking.finetune_classifier import FinetuneClassifier
from selfsup.utils.benchmarking.knn import knn_accuracy, knn_predict, knn_scores
from selfsup.utils.benchmarking.knn_classifier import KNNClassifier
from selfsup.utils.benchmarking.linear_classifier import LinearClassifier
from selfsup.utils.benchmarking.online_linear_classifier import OnlineLinearClassifier
from selfsup.utils.benchmarking.topk import mean_topk_accuracy

__all__ = [
    "BenchmarkModule",
    "FinetuneClassifier",
    "KNNClassifier",
    "LinearClassifier",
    "OnlineLinearClassifier",
    "knn_accuracy",
    "knn_predict",
    "knn_scores",
    "mean_topk_accuracy",
]
