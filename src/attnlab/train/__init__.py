"""Training: the loop, evaluation, checkpoints, exact resume and the loss curve."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .curves import plot_loss_curve, read_metrics
from .trainer import TrainConfig, TrainResult, learning_rate, train

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "learning_rate",
    "load_checkpoint",
    "plot_loss_curve",
    "read_metrics",
    "save_checkpoint",
    "train",
]
