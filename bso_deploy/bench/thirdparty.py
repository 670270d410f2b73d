"""Networks made by other tools for ``bso-deploy bench deploy``: each trained by its own framework on the digits
set (scikit-learn's 8x8 images, the split of ``bso_deploy.data``), seeded, and exported with that framework's
own exporter. :func:`build_network` returns a :class:`ThirdPartyNetwork`; trained models are cached under
``cache_dir`` (the torch parameters, exported again on load, or the netx file; plus a JSON of the framework's
test accuracy), keyed by name, seed, sizes and :data:`MODELS_VERSION`.

- ``snntorch-mlp``: ``Linear -> snn.Leaky -> Linear`` (zero reset, membrane readout), direct input (each
  image repeated ``time_steps`` times), exported with ``snntorch.export_nir.export_to_nir`` (dt = 1e-4);
- ``snntorch-rnn``: ``Linear -> snn.RLeaky (all-to-all recurrent Linear, reset_delay=False) -> Linear``,
  exported the same way (snnTorch's default delayed reset is not what its NIR export says);
- ``sinabs-cnn``: ``Conv -> IAF -> SumPool -> Conv -> IAF -> SumPool -> Flatten -> Linear`` on event counts
  (:func:`event_counts`: ``event_steps`` >= 300 one-step bins, Poisson counts of rate ``event_rate x`` for a
  pixel of intensity x in [0, 1], so a bin may hold more than one event), single spikes and reset to 0 (what
  NIR's IF expresses), trained by BPTT on random ``train_window``-bin crops of the stream (an IF layer's rate
  depends on the event rate, not on T), evaluated on the whole stream, exported with ``sinabs.nir.to_nir``
  (dt = 1); Adam with a cosine learning-rate schedule;
- ``lavadl-mlp``: two ``lava.lib.dl.slayer.block.cuba.Dense`` blocks on binary rate-coded spikes
  (:func:`bernoulli_spikes`), written with the blocks' own ``export_hdf5`` to a netx file. The blocks train on
  the weights the file holds: cuba.Dense's default ``pre_hook_fx`` is its neuron's ``quantize_8bit`` (weights
  rounded to steps of 2 / w_scale, clamped to [-256, 254] / w_scale), which ``export_hdf5`` applies too, and
  slayer's CUBA dynamics are integer ones. Each block delays its spikes by one step (``delay_shift``), as
  Lava's Dense does; slayer's reference run (accuracy, predictions, spike counts) therefore gets the same
  stream as the fixed backends: the T input steps followed by one zero step per block (docs/fixed-point.md
  §5.2), so the spikes that the last input steps cause are counted in both.

Training happens before anything imports Lava's runtime (Lava fixes the fork start method, ``bench/sim.py``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io import atomic_write_json
from ..options import DEPLOY_BENCH_NETWORKS as NETWORKS
from .thirdparty_data import bernoulli_spikes, digits_arrays, event_counts, repeat_steps

__all__ = ["NETWORKS", "NetworkSizes", "ThirdPartyNetwork", "bernoulli_spikes", "build_network", "digits_arrays",
           "event_counts"]

SNNTORCH_DT = 1e-4  # snnTorch's exporter writes tau = dt / (1 - beta) with this dt
SINABS_DT = 1.0  # Sinabs' IAF integrates once per bin: r = 1, dt = 1
MODELS_VERSION = 3  # part of the cache key: raise it when a model or its training changes
CNN_INIT_GAIN = 3.0
CNN_LOGIT_GAIN = 2.0
CNN_LEARNING_RATE = 1e-2  # Adam's initial rate, annealed to 0 on a cosine over the CNN's training steps


@dataclass(frozen=True)
class NetworkSizes:
    """Sizes and training budget of the benchmark networks (``quick()``: tiny ones, for a test)."""

    hidden: int = 128
    time_steps: int = 16  # direct-input steps of the snnTorch networks
    epochs: int = 15
    event_steps: int = 300  # one-step bins of the Sinabs CNN's event stream
    event_rate: float = 0.25  # expected events per bin of a pixel of intensity 1
    channels: tuple[int, int] = (16, 32)
    cnn_epochs: int = 20
    train_window: int = 40  # BPTT window of the CNN's training (random crops of the event stream)
    spike_steps: int = 32  # steps of the lava-dl network's binary spike input
    lavadl_epochs: int = 15
    train_samples: int | None = None  # None: the whole training split

    def __post_init__(self) -> None:
        for name in ("hidden", "time_steps", "epochs", "event_steps", "cnn_epochs", "train_window", "spike_steps",
                     "lavadl_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 < self.event_rate <= 8:
            raise ValueError(f"event_rate must be in (0, 8] events per bin, got {self.event_rate!r}")
        if self.train_samples is not None and (isinstance(self.train_samples, bool) or self.train_samples < 10):
            raise ValueError(f"train_samples must be None or an integer >= 10, got {self.train_samples!r}")
        if len(self.channels) != 2 or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be two positive ints, got {self.channels!r}")

    @classmethod
    def quick(cls) -> NetworkSizes:
        return cls(hidden=32, time_steps=6, epochs=10, event_steps=300, channels=(4, 8), cnn_epochs=1,
                   train_window=20, spike_steps=12, lavadl_epochs=8, train_samples=300)

    def key(self, name: str, seed: int) -> str:
        settings = {**asdict(self), "models": MODELS_VERSION}
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
        return f"{name}-seed{seed}-{digest}"


@dataclass(frozen=True)
class ThirdPartyNetwork:
    """A trained third-party network and its data. ``graph`` (NIR, kind "nir") or ``netx_path`` (kind "netx").

    Inputs are float, (T, batch, *input_shape): train_inputs for calibration, test_inputs for evaluation.
    framework_accuracy: the framework's own forward pass on the test split (lava-dl: slayer's, before export).
    """

    name: str
    framework: str
    kind: str
    dt: float | None
    train_inputs: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    framework_accuracy: float
    train_seconds: float
    cached: bool
    description: str
    graph: Any = None
    netx_path: Path | None = None
    framework_predictions: list[int] | None = None  # lava-dl: slayer's test predictions
    framework_layer_spikes: list[list[int]] | None = None  # lava-dl: slayer's spikes per (test sample, block)
    framework_flush_steps: int | None = None  # lava-dl: zero steps after the input in slayer's reference run


def _batches(count: int, size: int, generator: torch.Generator):
    order = torch.randperm(count, generator=generator)
    return [order[start:start + size] for start in range(0, count, size)]


# ---------------------------------------------------------------- snnTorch

def _snntorch_model(hidden: int, recurrent: bool) -> nn.Sequential:
    import snntorch as snn  # lazy: snnTorch is an optional benchmark dependency

    if recurrent:
        # reset_delay=False: snnTorch's default delayed reset is not what the exported NIR graph says
        neuron = snn.RLeaky(beta=0.9, linear_features=hidden, all_to_all=True, init_hidden=True,
                            reset_mechanism="zero", reset_delay=False)
    else:  # per-neuron beta and threshold: the exported LIF node then has the layer's shape
        neuron = snn.Leaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden), init_hidden=True,
                           reset_mechanism="zero")
    return nn.Sequential(nn.Linear(64, hidden), neuron, nn.Linear(hidden, 10))


def _snntorch_forward(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Readout summed over the steps of x (T, batch, 64)."""
    from snntorch import utils  # lazy: snnTorch is an optional benchmark dependency

    utils.reset(model)
    return torch.stack([model(step) for step in x]).sum(0)


def _train_snntorch(sizes: NetworkSizes, seed: int, recurrent: bool, data) -> tuple[nn.Sequential, float]:
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    model = _snntorch_model(sizes.hidden, recurrent)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.from_numpy(repeat_steps(train_x, sizes.time_steps))
    y = torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(sizes.epochs):
        for index in _batches(len(y), 64, generator):
            loss = nn.functional.cross_entropy(_snntorch_forward(model, x[:, index]) / sizes.time_steps, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        logits = _snntorch_forward(model, torch.from_numpy(repeat_steps(test_x, sizes.time_steps)))
    return model, float((logits.argmax(1).numpy() == test_y).mean())


def _export_snntorch(model: nn.Sequential) -> Any:
    from snntorch import utils  # lazy: snnTorch is an optional benchmark dependency
    from snntorch.export_nir import export_to_nir

    utils.reset(model)
    return export_to_nir(model, torch.zeros(1, 64), ignore_dims=[0])


# ---------------------------------------------------------------- Sinabs

def _sinabs_model(sizes: NetworkSizes) -> nn.Sequential:
    import sinabs.layers as sl  # lazy: Sinabs is an optional benchmark dependency
    from sinabs.activation import MembraneReset, SingleSpike

    c1, c2 = sizes.channels

    def iaf() -> nn.Module:  # single spikes and reset to 0: what NIR's IF node says
        return sl.IAFSqueeze(num_timesteps=sizes.event_steps, spike_fn=SingleSpike, reset_fn=MembraneReset())

    return nn.Sequential(nn.Conv2d(1, c1, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),
                         nn.Conv2d(c1, c2, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),
                         nn.Flatten(), nn.Linear(c2 * 4, 10, bias=False))


def _sinabs_forward(model: nn.Sequential, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Readout summed over the bins of x (T, batch, 1, 8, 8) (Sinabs' squeeze layers take (batch * T, ...))."""
    from sinabs import reset_states  # lazy: Sinabs is an optional benchmark dependency

    for module in model:
        if hasattr(module, "num_timesteps"):
            module.num_timesteps = steps
    reset_states(model)
    steps, batch = x.shape[:2]
    out = model(x.transpose(0, 1).reshape(batch * steps, *x.shape[2:]))
    return out.reshape(batch, steps, -1).sum(1)


def _train_sinabs(sizes: NetworkSizes, seed: int, data, train_events: np.ndarray,
                  test_events: np.ndarray) -> tuple[nn.Sequential, float]:
    _, train_y, _, test_y = data
    torch.manual_seed(seed)
    model = _sinabs_model(sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=CNN_LEARNING_RATE)
    with torch.no_grad():  # a larger initial gain: the sparse events then drive both IAF layers from the start
        for module in model:
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(CNN_INIT_GAIN)
    x, y = torch.from_numpy(train_events), torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(seed)
    window = min(sizes.train_window, sizes.event_steps)
    batches_per_epoch = -(-len(y) // 64)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=sizes.cnn_epochs * batches_per_epoch)
    for _ in range(sizes.cnn_epochs):
        for index in _batches(len(y), 64, generator):
            # BPTT through a random window of the stream: an IF layer's rate depends on the event rate, not on T
            begin = int(torch.randint(0, sizes.event_steps - window + 1, (1,), generator=generator))
            logits = _sinabs_forward(model, x[begin:begin + window, index], window)
            loss = nn.functional.cross_entropy(logits * (CNN_LOGIT_GAIN / window), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        logits = torch.cat([_sinabs_forward(model, torch.from_numpy(test_events[:, start:start + 64]),
                                            sizes.event_steps)
                            for start in range(0, len(test_y), 64)])
    return model, float((logits.argmax(1).numpy() == test_y).mean())


def _export_sinabs(model: nn.Sequential, sizes: NetworkSizes) -> Any:
    from sinabs import reset_states  # lazy: Sinabs is an optional benchmark dependency
    from sinabs.nir import to_nir

    for module in model:
        if hasattr(module, "num_timesteps"):
            module.num_timesteps = sizes.event_steps
    reset_states(model)
    with torch.no_grad():
        return to_nir(model, torch.zeros(sizes.event_steps, 1, 8, 8))


# ---------------------------------------------------------------- lava-dl

LAVADL_NEURON = {"threshold": 1.0, "current_decay": 0.5, "voltage_decay": 0.1, "tau_grad": 1.0, "scale_grad": 1.0,
                 "requires_grad": False}


def _train_lavadl(sizes: NetworkSizes, seed: int, data, path: Path) -> dict[str, Any]:
    """Train with slayer's spike-rate loss, write the netx file; returns slayer's test accuracy, predictions
    (argmax of the output spike counts, slayer.classifier.Rate) and spike counts (sample, block), run on the
    test stream followed by ``flush_steps`` zero steps (one per block: each delays its output by one step)."""
    import h5py  # lazy: h5py and lava-dl (which imports torchvision and Lava) are optional and heavy
    from lava.lib.dl import slayer

    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    # no pre_hook_fx given: cuba.Dense quantizes the weights of its forward pass to the 8-bit grid that
    # export_hdf5 writes (neuron.quantize_8bit), so training is quantization-aware, as lava-dl deploys
    blocks = nn.ModuleList([slayer.block.cuba.Dense(LAVADL_NEURON, 64, sizes.hidden, weight_scale=2),
                            slayer.block.cuba.Dense(LAVADL_NEURON, sizes.hidden, 10, weight_scale=2)])

    def forward(spikes: torch.Tensor) -> list[torch.Tensor]:  # (T, batch, 64) -> spikes per block (batch, n, T)
        outputs = [spikes.permute(1, 2, 0).contiguous()]
        for block in blocks:
            outputs.append(block(outputs[-1]))
        return outputs[1:]

    loss_fn = slayer.loss.SpikeRate(true_rate=0.3, false_rate=0.03, reduction="sum")
    optimizer = torch.optim.Adam(blocks.parameters(), lr=3e-3)
    x = torch.from_numpy(bernoulli_spikes(train_x, sizes.spike_steps, seed))
    y = torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(sizes.lavadl_epochs):
        for index in _batches(len(y), 64, generator):
            loss = loss_fn(forward(x[:, index])[-1], y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    flush_steps = len(blocks)
    test_spikes = bernoulli_spikes(test_x, sizes.spike_steps, seed + 1)
    stream = np.concatenate([test_spikes, np.zeros((flush_steps, *test_spikes.shape[1:]), np.float32)])
    with torch.no_grad():
        outputs = forward(torch.from_numpy(stream))
        predictions = slayer.classifier.Rate.predict(outputs[-1]).numpy().astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:  # the netx layout lava-dl's tutorials write
        layers = handle.create_group("layer")
        for index, block in enumerate(blocks):
            block.export_hdf5(layers.create_group(f"{index}"))
    return {"accuracy": float(np.mean(predictions == test_y)), "predictions": predictions.tolist(),
            "layer_spikes": torch.stack([out.sum((1, 2)) for out in outputs], 1).to(torch.int64).tolist(),
            "flush_steps": flush_steps}


# ---------------------------------------------------------------- build + cache

def _load_parameters(model: nn.Module, path: Path) -> None:
    """Trained parameters only: the neuron states in the buffers are reset before every use."""
    missing, unexpected = model.load_state_dict(torch.load(path), strict=False)
    parameters = dict(model.named_parameters())
    if unexpected or any(name in parameters for name in missing):
        raise ValueError(f"{path}: cached model does not fit (missing {missing}, unexpected {unexpected}); "
                         "delete the cache folder to retrain")


def build_network(name: str, seed: int, sizes: NetworkSizes, cache_dir: str | Path) -> ThirdPartyNetwork:
    """Train (or load from ``cache_dir``) network ``name`` of :data:`NETWORKS` with ``seed``; torch models are
    cached as state dicts and exported again on load (Sinabs' graphs hold None fields NIR's writer refuses)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; valid networks: {', '.join(NETWORKS)}")
    cache = Path(cache_dir) / sizes.key(name, seed)
    meta_path, model_path = cache / "meta.json", cache / "model.pt"
    data = digits_arrays(seed, sizes.train_samples)
    train_x, _, test_x, test_y = data
    cached = meta_path.is_file()
    meta = json.loads(meta_path.read_text()) if cached else {}
    start = time.perf_counter()
    graph = netx_path = model = None
    if name in ("snntorch-mlp", "snntorch-rnn"):
        recurrent = name == "snntorch-rnn"
        if cached:
            model = _snntorch_model(sizes.hidden, recurrent)
            _load_parameters(model, model_path)
        else:
            model, meta["accuracy"] = _train_snntorch(sizes, seed, recurrent, data)
        graph = _export_snntorch(model)
        train_in, test_in = repeat_steps(train_x, sizes.time_steps), repeat_steps(test_x, sizes.time_steps)
        framework, kind, dt = "snntorch", "nir", SNNTORCH_DT
        description = (f"snnTorch Linear(64,{sizes.hidden})-{'RLeaky' if recurrent else 'Leaky'}-"
                       f"Linear({sizes.hidden},10), T={sizes.time_steps} direct input")
    elif name == "sinabs-cnn":
        train_in = event_counts(train_x, sizes.event_steps, sizes.event_rate, seed)
        test_in = event_counts(test_x, sizes.event_steps, sizes.event_rate, seed + 1)
        if cached:
            model = _sinabs_model(sizes)
            _load_parameters(model, model_path)
        else:
            model, meta["accuracy"] = _train_sinabs(sizes, seed, data, train_in, test_in)
        graph = _export_sinabs(model, sizes)
        framework, kind, dt = "sinabs", "nir", SINABS_DT
        c1, c2 = sizes.channels
        description = (f"Sinabs Conv({c1})-IAF-SumPool-Conv({c2})-IAF-SumPool-Linear(10), {sizes.event_steps} "
                       f"one-step bins of Poisson event counts (rate {sizes.event_rate} x)")
    else:
        netx_path = cache / "model.net"
        if not cached:
            meta.update(_train_lavadl(sizes, seed, data, netx_path))
        train_in = bernoulli_spikes(train_x, sizes.spike_steps, seed)
        test_in = bernoulli_spikes(test_x, sizes.spike_steps, seed + 1)
        framework, kind, dt = "lava-dl", "netx", None
        description = (f"lava-dl slayer cuba.Dense 64-{sizes.hidden}-10, T={sizes.spike_steps} Bernoulli spikes, "
                       "export_hdf5 -> netx")
    if not cached:
        meta["train_seconds"] = time.perf_counter() - start
        cache.mkdir(parents=True, exist_ok=True)
        if model is not None:
            torch.save(dict(model.named_parameters()), model_path)
        atomic_write_json(meta_path, meta)
    return ThirdPartyNetwork(name=name, framework=framework, kind=kind, dt=dt, train_inputs=train_in,
                             test_inputs=test_in, test_labels=test_y, framework_accuracy=float(meta["accuracy"]),
                             train_seconds=float(meta["train_seconds"]), cached=cached, description=description,
                             graph=graph, netx_path=netx_path, framework_predictions=meta.get("predictions"),
                             framework_layer_spikes=meta.get("layer_spikes"),
                             framework_flush_steps=meta.get("flush_steps"))
