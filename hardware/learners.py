"""The learners by name (docs/onchip-learning.md §11): :data:`LEARNERS` and :func:`get_learner`.

``"sim"`` is the NumPy rule (``hardware/learning.py``), ``"torch"`` the torch rule
(``hardware/torch_learning.py``), ``"lava"`` the Lava process (``hardware/lava/onchip.py``). Each entry is a
factory ``(fx_net, rule, layer=-1, state=None) -> Learner`` (:class:`~.learner.Learner`).
"""

from __future__ import annotations

from types import MappingProxyType

from .learner import Learner, LearnerFactory, LearningState
from .learning import SimLearner
from .learning_rule import LearningRule
from .network import FixedPointNetwork
from .torch_learning import TorchLearner

__all__ = ["LEARNERS", "get_learner", "lava_learner"]


def lava_learner(fx_net: FixedPointNetwork, rule: LearningRule, layer: int = -1,
                 state: LearningState | None = None) -> Learner:
    """The ``"lava"`` learner: :class:`~.lava.onchip.LavaLearner` ``(fx_net, rule, layer, state)``."""
    from .lava.onchip import LavaLearner  # Lava is optional and takes seconds to import: only this learner needs it

    return LavaLearner(fx_net, rule, layer, state)


LEARNERS: MappingProxyType[str, LearnerFactory] = MappingProxyType(
    {"sim": SimLearner, "torch": TorchLearner, "lava": lava_learner})


def get_learner(name: str) -> LearnerFactory:
    """The factory called ``name`` in :data:`LEARNERS`; ValueError listing the valid names otherwise."""
    try:
        return LEARNERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown learner backend {name!r}; valid: {', '.join(sorted(LEARNERS))}") from None
