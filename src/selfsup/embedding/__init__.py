"""Training loops on top of the library parts: Lightning wrappers that train and embed."""

from selfsup.embedding._base import CHECKPOINT_METADATA_KEY, BaseEmbedding
from selfsup.embedding._method import MethodEmbedding
from selfsup.embedding.embedding import SelfSupervisedEmbedding

__all__ = ["CHECKPOINT_METADATA_KEY", "BaseEmbedding", "MethodEmbedding", "SelfSupervisedEmbedding"]
