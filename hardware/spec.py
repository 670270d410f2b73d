"""The one place that holds the integer widths and rules of the fixed-point hardware model.

Every number here is defined, with its reason, in ``docs/fixed-point.md``; this module only makes those
numbers importable. The simulator, the torch reference, the Lava models and the tests read them from here:
no other module writes a bit width or a shift as a literal (docs/fixed-point.md §2).

- :data:`SPEC` (a :class:`FixedPointSpec`): widths and ranges shared by both profiles.
- :data:`PROFILES` / :func:`get_profile`: what each profile (``loihi``, ``bso``) allows (§6).
- :func:`decay_from_tau`: the decay register for a leak lambda = 1 - 1/tau (§7.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CONNECTION_KINDS",
    "PROFILES",
    "RESET_MODES",
    "SHIFT_ROUNDINGS",
    "SPEC",
    "FixedPointSpec",
    "Profile",
    "decay_from_tau",
    "get_profile",
]

CONNECTION_KINDS = ("dense", "conv")  # docs/fixed-point.md §4.4
RESET_MODES = ("zero", "subtract")  # docs/fixed-point.md §3.6
SHIFT_ROUNDINGS = ("floor", "nearest")  # rounding of a negative weight exponent, docs/fixed-point.md §4.7


@dataclass(frozen=True)
class FixedPointSpec:
    """Bit widths of the integer model (docs/fixed-point.md §2). Derived ranges are properties.

    Signed fields are two's complement unless a property says otherwise (the wrap interval of u, §3.2,
    and the symmetric saturation of v, §3.3, follow Lava's model exactly).
    """

    decay_bits: int = 12  # du, dv: unsigned; decays are fractions of 2**decay_bits (§3.1)
    state_bits: int = 24  # u, v: signed state registers (§3.2, §3.3)
    state_shift: int = 6  # synaptic input and threshold are MSB-aligned: a << 6, vth << 6 (§3.1, §3.5)
    threshold_bits: int = 17  # vth: unsigned (§3.5)
    bias_mant_bits: int = 13  # bias_mant: signed (§3.4)
    bias_exp_bits: int = 4  # bias_exp: signed, negative = arithmetic right shift (§3.4)
    weight_bits: int = 8  # full-precision synapses, Lava Dense num_weight_bits default (§4.5)
    mixed_dropped_bits: int = 1  # low weight bits dropped in Lava's mixed sign mode (§4.5)
    binary_weight_bits: int = 1  # binary synapses: one sign bit each (§4.6)
    weight_exp_bits: int = 4  # weight_exp: signed (§4.7)
    input_bits: int = 8  # network input: unsigned graded values (§5.3)
    activation_bits: int = 16  # synaptic input a: Loihi's activation width, the compiler's bound (§8)

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"FixedPointSpec.{name} must be a positive int, got {value!r}")

    # --- decays (§3.1) ---
    @property
    def decay_unity(self) -> int:
        """2**decay_bits: the decay factor of u is (decay_unity - (du + 1)), of v (decay_unity - dv)."""
        return 1 << self.decay_bits

    @property
    def decay_max(self) -> int:
        return (1 << self.decay_bits) - 1

    # --- states (§3.2, §3.3) ---
    @property
    def u_max(self) -> int:
        """Upper end (inclusive) of the wrap interval of u, (-2**23, 2**23] (§3.2)."""
        return 1 << (self.state_bits - 1)

    @property
    def u_min(self) -> int:
        """Lower end (inclusive) of the wrap interval of u: -2**23 + 1 (§3.2)."""
        return -(1 << (self.state_bits - 1)) + 1

    @property
    def u_modulus(self) -> int:
        """u wraps modulo 2**state_bits (§3.2)."""
        return 1 << self.state_bits

    @property
    def v_max(self) -> int:
        """v saturates at +-(2**23 - 1) (§3.3)."""
        return (1 << (self.state_bits - 1)) - 1

    @property
    def v_min(self) -> int:
        return -self.v_max

    # --- threshold and bias (§3.4, §3.5) ---
    @property
    def vth_max(self) -> int:
        return (1 << self.threshold_bits) - 1

    @property
    def bias_mant_min(self) -> int:
        return -(1 << (self.bias_mant_bits - 1))

    @property
    def bias_mant_max(self) -> int:
        return (1 << (self.bias_mant_bits - 1)) - 1

    @property
    def bias_exp_min(self) -> int:
        return -(1 << (self.bias_exp_bits - 1))

    @property
    def bias_exp_max(self) -> int:
        return (1 << (self.bias_exp_bits - 1)) - 1

    # --- synapses (§4.5 - §4.7) ---
    @property
    def weight_min(self) -> int:
        """Smallest full-precision weight accepted: Lava's MIXED-mode clip bound -2**8 (§4.5)."""
        return -(1 << self.weight_bits)

    @property
    def weight_max(self) -> int:
        """Largest full-precision weight accepted: Lava's clip bound 2**8 - 1 (§4.5)."""
        return (1 << self.weight_bits) - 1

    @property
    def weight_mant_max(self) -> int:
        """Largest binary weight magnitude: 2**7 - 1, the largest +-symmetric MIXED-mode mantissa (§4.6)."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def binary_weight_values(self) -> tuple[int, ...]:
        """The values a binary weight sign may take (§4.6): -1 and +1."""
        magnitude = (1 << self.binary_weight_bits) - 1
        return (-magnitude, magnitude)

    @property
    def weight_exp_min(self) -> int:
        return -(1 << (self.weight_exp_bits - 1))

    @property
    def weight_exp_max(self) -> int:
        return (1 << (self.weight_exp_bits - 1)) - 1

    # --- input and activation (§5.3, §8) ---
    @property
    def input_max(self) -> int:
        return (1 << self.input_bits) - 1

    @property
    def activation_max(self) -> int:
        """|a| bound the compiler guarantees (§8): 2**15 - 1."""
        return (1 << (self.activation_bits - 1)) - 1

    @property
    def exact_float64_bound(self) -> int:
        """Integers of magnitude below 2**53 are exact in float64 (used to justify float matmuls)."""
        return 1 << 53

    @property
    def exact_float32_bound(self) -> int:
        """Integers of magnitude below 2**24 are exact in float32."""
        return 1 << 24


SPEC = FixedPointSpec()


@dataclass(frozen=True)
class Profile:
    """What a profile allows (docs/fixed-point.md §6); the widths are those of ``spec`` in both.

    delayed_bias: whether a layer with a nonzero bias may start it later than step 0 (``bias_delay`` > 0,
    §3.4); Lava's built-in LIF adds its bias from the first step, so profile ``loihi`` may not.
    shift_roundings: how a negative weight exponent may round the synaptic sum (§4.7); Lava's Dense floors,
    so profile ``loihi`` admits ``floor`` only.
    """

    name: str
    description: str
    connection_kinds: tuple[str, ...]
    reset_modes: tuple[str, ...]
    per_neuron_threshold: bool
    pooling: bool
    delayed_bias: bool = True
    shift_roundings: tuple[str, ...] = SHIFT_ROUNDINGS
    spec: FixedPointSpec = field(default=SPEC)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Profile.name must be a non-empty string")
        unknown_kinds = set(self.connection_kinds) - set(CONNECTION_KINDS)
        if not self.connection_kinds or unknown_kinds:
            raise ValueError(f"profile {self.name!r}: connection_kinds must be a non-empty subset of "
                             f"{CONNECTION_KINDS}, got {self.connection_kinds}")
        unknown_resets = set(self.reset_modes) - set(RESET_MODES)
        if not self.reset_modes or unknown_resets:
            raise ValueError(f"profile {self.name!r}: reset_modes must be a non-empty subset of "
                             f"{RESET_MODES}, got {self.reset_modes}")
        unknown_roundings = set(self.shift_roundings) - set(SHIFT_ROUNDINGS)
        if not self.shift_roundings or unknown_roundings:
            raise ValueError(f"profile {self.name!r}: shift_roundings must be a non-empty subset of "
                             f"{SHIFT_ROUNDINGS}, got {self.shift_roundings}")


PROFILES = MappingProxyType({
    "loihi": Profile(
        name="loihi",
        description="exactly Lava's built-in fixed_pt LIF + Dense: dense connections, one vth per layer, "
                    "reset to zero, biases from step 0 (docs/fixed-point.md §6.1)",
        connection_kinds=("dense",),
        reset_modes=("zero",),
        per_neuron_threshold=False,
        pooling=False,
        delayed_bias=False,
        shift_roundings=("floor",),
    ),
    "bso": Profile(
        name="bso",
        description="BSO-trained networks: per-neuron vth and bias (BatchNorm folded), subtract or zero "
                    "reset, dense or conv with sum pooling, 1-bit synapses, delayed biases (docs/fixed-point.md §6.2)",
        connection_kinds=("dense", "conv"),
        reset_modes=("zero", "subtract"),
        per_neuron_threshold=True,
        pooling=True,
        delayed_bias=True,
    ),
})


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError listing the valid names otherwise."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown fixed-point profile {name!r}; valid profiles: {', '.join(PROFILES)}") from None


def decay_from_tau(tau: float, spec: FixedPointSpec = SPEC) -> int:
    """Decay register for a leak ``lambda = 1 - 1/tau`` (tau in time steps): ``round(4096 / tau)``
    (half up), so that ``trunc(v * (4096 - dv) / 4096)`` approximates ``lambda * v`` (docs/fixed-point.md
    §7.1). tau = 2 gives 2048 (exact halving), tau = inf gives 0 (no leak). ValueError when the result
    leaves [0, 4095]. For the current u the register is ``du = decay_from_tau(tau_syn) - 1`` (§3.1)."""
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or math.isnan(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive number of time steps (inf: no leak), got {tau!r}")
    decay = math.floor(spec.decay_unity / tau + 0.5)
    if not 0 <= decay <= spec.decay_max:
        raise ValueError(f"tau={tau} gives decay {decay}, outside [0, {spec.decay_max}]; tau must be at least "
                         f"{spec.decay_unity / (spec.decay_max + 0.5):.6f} time steps")
    return decay
