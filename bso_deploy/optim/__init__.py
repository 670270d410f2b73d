"""Optimizers for binary weights W in {-1, +1} (no latent weights): BSO, T-BSO, Bop, and their schedule.

Full-precision parameters (first layer, BatchNorm, classifier) are trained by a standard optimizer such as
torch.optim.SGD (the online loop uses `OnlineSGD`, SGD with a leaner step); these optimizers take the binary
parameters only. Equations: see each class docstring.
"""

from bso_deploy.optim.bop import Bop
from bso_deploy.optim.bso import BSO, BinaryOptimizer
from bso_deploy.optim.functional import bop_update, bso_update, tbso_update
from bso_deploy.optim.schedules import CosineLR, StepDecay
from bso_deploy.optim.sgd import OnlineSGD
from bso_deploy.optim.tbso import TBSO

BINARY_OPTIMIZERS: dict[str, type[BinaryOptimizer]] = {"bso": BSO, "tbso": TBSO, "bop": Bop}

__all__ = [
    "BINARY_OPTIMIZERS",
    "BSO",
    "TBSO",
    "BinaryOptimizer",
    "Bop",
    "CosineLR",
    "OnlineSGD",
    "StepDecay",
    "bop_update",
    "bso_update",
    "tbso_update",
]
