"""The compiler's quantization report, typed: what :func:`~.compiler.compile_nir` chose and rounded, per layer.

A :class:`QuantizationReport` holds one :class:`LayerQuantization` per layer and the T the readout was sized
for. Its JSON form (:meth:`QuantizationReport.to_dicts`) is what a compiled network stores in
``FixedPointNetwork.quantization`` and what ``bso-deploy compile`` writes under ``quantization``: one dict
per layer, the first one also carrying ``input_scale``, ``input_max`` and ``time_steps``. The input scale a
network needs to run is the network's own (``FixedPointNetwork.input_scale`` / ``input_max``); the first
entry records it as the compiler chose it. The quantities and the rules that choose them are
docs/fixed-point.md §10.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

from .network import FixedPointNetwork
from .scaling import SCALINGS

__all__ = ["LayerQuantization", "QuantizationReport", "ThresholdFold"]

@dataclass(frozen=True)
class ThresholdFold:
    """Per-neuron thresholds folded into the weight rows (docs/fixed-point.md §10.5): row i scaled by
    ``row_scale_i = threshold_reference / theta_i`` (float, dimensionless); ``binary_to_full_precision``: the
    layer's binary rows then differed in magnitude and became 8-bit weights."""

    threshold_reference: float
    row_scale_min: float
    row_scale_max: float
    binary_to_full_precision: bool

    def to_dict(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdFold:
        return cls(**_known_keys(cls, data, "threshold_fold"))


@dataclass(frozen=True)
class LayerQuantization:
    """What the compiler chose for one layer (docs/fixed-point.md §10; float units are the graph's).

    Always present: ``scale`` K (integer v units per float unit of v, one per layer; per neuron it is K / alpha_i
    for binary rows, from ``scale_min`` to ``scale_max``), the bound that stopped a larger scale
    (``binding_bound``), the largest absolute rounding errors of weights, biases and thresholds in float
    units, the decay registers ``du``/``dv`` and their errors against exp(-1/tau) (``syn_decay_error`` None
    without a current), the worst-case register bounds (§10.3) and the ``scaling`` that chose the scale.
    The fields with a default are absent from the JSON form while they keep it (None, False): recurrent
    synapse errors, profile loihi's floor compensation, the calibration margin and peaks (§10.6), notes,
    ``input_scale``/``input_max`` (first layer: how float inputs enter, the network's own
    ``FixedPointNetwork.input_scale``/``input_max``), netx's largest integer weight (§10.5), the calibration
    spike count, the bias correction (§10.6), the threshold fold and ``netx_compatible``.
    """

    layer: str
    nodes: tuple[str, ...]
    kind: str
    binary: bool
    spiking: bool
    reset: str
    scale: float
    scale_min: float
    scale_max: float
    binding_bound: str
    weight_bits: int
    weight_max_abs_error: float
    bias_max_abs_error: float
    threshold_max_abs_error: float
    du: int
    dv: int
    decay_error: float
    syn_decay_error: float | None
    activation_bound: int
    u_bound: int
    v_bound: int
    matmul_bound: int
    bias_delay: int
    shift_rounding: str
    scaling: str
    # The JSON form holds the fields below, in this order, only where they differ from their default.
    recurrent_weight_max_abs_error: float | None = None
    recurrent_activation_bound: int | None = None
    floor_compensation: float | None = None
    calibration_margin: float | None = None
    calibrated_u_peak: int | None = None
    calibrated_v_peak: int | None = None
    bias_timing_note: str | None = None
    readout_steps: int | None = None
    bias_note: str | None = None
    note: str | None = None
    input_scale: float | None = None
    input_max: int | None = None
    weight_max_int: int | None = None
    calibration_spikes: int | None = None
    bias_correction: float | None = None
    threshold_fold: ThresholdFold | None = None
    netx_compatible: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if isinstance(self.threshold_fold, dict):
            object.__setattr__(self, "threshold_fold", ThresholdFold.from_dict(self.threshold_fold))
        if self.scaling not in SCALINGS:
            raise ValueError(f"layer {self.layer!r}: scaling must be one of {', '.join(SCALINGS)}, "
                             f"got {self.scaling!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field without a default, then those that differ from their default."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.default is not MISSING and value == item.default:
                continue
            if isinstance(value, ThresholdFold):
                value = value.to_dict()
            result[item.name] = list(value) if item.name == "nodes" else value
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerQuantization:
        """Read :meth:`to_dict`'s form; ValueError naming the keys that are missing or unknown."""
        return cls(**_known_keys(cls, data, f"the quantization entry of layer {data.get('layer')!r}"))


def _known_keys(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    names = {item.name for item in fields(cls)}
    required = {item.name for item in fields(cls) if item.default is MISSING}
    unknown, missing = sorted(set(data) - names), sorted(required - set(data))
    if unknown or missing:
        raise ValueError(f"{what} is not a compiler report: unknown keys {unknown}, missing keys {missing} "
                         "(only networks compiled by compile_nir carry one; netx imports carry netx's records)")
    return dict(data)


@dataclass(frozen=True)
class QuantizationReport:
    """One :class:`LayerQuantization` per layer of a compiled network, and ``time_steps``: the input steps
    the readout sums without saturating (§10.3)."""

    layers: tuple[LayerQuantization, ...]
    time_steps: int

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers or not all(isinstance(layer, LayerQuantization) for layer in layers):
            raise ValueError("a QuantizationReport needs one LayerQuantization per layer (at least one)")
        if isinstance(self.time_steps, bool) or not isinstance(self.time_steps, int) or self.time_steps < 1:
            raise ValueError(f"time_steps must be an integer >= 1, got {self.time_steps!r}")
        object.__setattr__(self, "layers", layers)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The JSON form, one dict per layer; the first also holds ``time_steps`` (last)."""
        entries = [layer.to_dict() for layer in self.layers]
        entries[0]["time_steps"] = self.time_steps
        return entries

    @classmethod
    def from_dicts(cls, entries: Any) -> QuantizationReport:
        """Read :meth:`to_dicts`'s form (a saved network's or ``bso-deploy compile``'s ``quantization``)."""
        entries = [dict(entry) for entry in entries]
        if not entries or "time_steps" not in entries[0]:
            raise ValueError("a compiler report has one entry per layer, the first with 'time_steps'; got "
                             f"{len(entries)} entries" + (f" (first: {sorted(entries[0])})" if entries else ""))
        time_steps = entries[0].pop("time_steps")
        return cls(layers=tuple(LayerQuantization.from_dict(entry) for entry in entries), time_steps=time_steps)

    @classmethod
    def from_network(cls, fx_net: FixedPointNetwork) -> QuantizationReport:
        """The report of a network compiled by ``compile_nir`` (saved and loaded, or not); ValueError for one
        that has none (built by hand, read from netx)."""
        if not fx_net.quantization:
            raise ValueError("the network has no quantization report (it was not compiled by compile_nir)")
        return cls.from_dicts(fx_net.quantization)
