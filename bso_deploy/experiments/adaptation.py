"""On-chip adaptation scenario: a deployed binary SNN recovers from a shift of its input distribution by
learning its output layer on chip, in fixed point (docs/onchip-learning.md §12).

:func:`run_adaptation` (config: :class:`AdaptationConfig`):

1. trains a spiking MLP on the data set (``dataset``: digits, 8x8, or Fashion-MNIST, 28x28, both flattened:
   the MLP's input size is the image's pixel count) online with bso_deploy's own T-BSO training (layers as
   ``binary="hidden"``: first layer 8-bit, further hidden layers binary with BatchNorm; the readout a
   ``BinaryLinear`` without BatchNorm, so it stays one sign per synapse with one scale for the whole layer),
   exports it to NIR and compiles it (profile ``bso``);
2. shifts the input distribution (``shift``: ``invert`` = 1 - x, ``rotate``, ``contrast``, ``shift`` = images
   moved by two pixels, ``none``; :mod:`.adaptation_scenarios`) and measures the fixed-point test accuracy
   (``accuracy_before``); with ``pretrain_classes`` K > 0 (class-incremental) step 1 sees the classes 0 .. K-1
   only, and the new and old classes' accuracies are reported apart (``new_class_accuracy_before`` ...);
3. streams ``samples`` shifted training images (``passes`` times) through a :class:`~bso_deploy.hardware.
   learner.Learner` (``backend``: ``sim``, ``torch`` or ``lava``), the readout learning from its
   on-chip error; ``accuracy_after`` is the fixed-point test accuracy with the learned weights;
4. runs the float readout on the same stream with the float optimizer (T-BSO or BSO of ``bso_deploy.optim``)
   on the float form of the same three factors, twice: driven by the chip's own hidden spikes, for
   ``flip_agreement`` (F1 of the flip events, with precision and recall, matched exactly on (sample, time
   step, synapse)), and end to end in the float network, for ``float_accuracy_after`` and
   ``details["end_to_end_flip_agreement"]`` (docs/onchip-learning.md §12).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from bso_deploy.errors import RangeError
from bso_deploy.export.nir import NIRExportWarning, to_nir
from bso_deploy.hardware.compiler import compile_nir
from bso_deploy.hardware.learner import learning_window
from bso_deploy.hardware.learners import get_learner
from bso_deploy.hardware.learning_rule import LearningRule
from bso_deploy.hardware.network import append_zero_steps
from bso_deploy.hardware.quantize import quantize_inputs
from bso_deploy.hardware.simulator import simulate

from ..config import TrainConfig
from ..data import DatasetSplit, ImageTensorDataset, load_dataset, make_loaders
from ..encoding import make_encoder
from ..layers import BinaryLinear
from ..models import build_mlp
from ..optim import BSO, TBSO
from ..training import make_optimizers, train_epoch
from .adaptation_config import DATASETS, SHIFTS, AdaptationConfig, AdaptationResult
from .adaptation_hidden import FeedbackAlignmentLearner, hidden_rule
from .adaptation_reference import (
    float_rule_reference,
    learning_fields,
    learning_network,
    logistic_reference,
    readout_counts,
    readout_spikes,
)
from .adaptation_scenarios import class_accuracies, image_shape, pretraining_subset, scenario_name, shift_inputs

__all__ = ["DATASETS", "INPUT_SCALES", "SHIFTS", "AdaptationConfig", "AdaptationResult", "compile_deployed",
           "image_shape", "run_adaptation", "shift_inputs"]


def _arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Images flattened to (N, pixels) float32 in [0, 1] and labels (N,) int64 of a data set of ``load_dataset``:
    digits' TensorDataset, or an ImageTensorDataset's uint8 images as its samples are (pixel / 255)."""
    if isinstance(dataset, ImageTensorDataset):
        if dataset.mean is not None:
            raise ValueError("the adaptation scenario needs images in [0, 1]; this data set is normalized per channel")
        images, labels = dataset.images.to(torch.float32) / 255.0, dataset.labels
    else:
        images, labels = dataset.tensors
    return images.reshape(len(images), -1).numpy().astype(np.float32), labels.numpy().astype(np.int64)


def _pretrain(config: AdaptationConfig, progress: bool) -> tuple[Any, Any]:
    """The deployed network: an MLP on the data set's flattened images, trained online with T-BSO; hidden
    layers as bso_deploy's ``hidden`` choice, the readout a BinaryLinear without BatchNorm (one scale for the
    layer, so the fixed-point readout compares classes in one unit; docs/onchip-learning.md §12). Returns
    (model in eval mode, the data split as ``load_dataset`` gives it). With ``pretrain_classes`` K > 0 it
    trains on the images of classes 0 .. K-1 only (the readout still has a neuron per class)."""
    train_config = TrainConfig(dataset=config.dataset, method="tbso", time_steps=config.time_steps,
                               epochs=config.train_epochs, batch_size=config.train_batch_size, seed=config.seed,
                               hidden=config.hidden)
    torch.manual_seed(config.seed)
    split = load_dataset(config.dataset, root=config.data_root, seed=config.seed)
    if config.pretrain_classes >= split.num_classes:
        raise ValueError(f"AdaptationConfig.pretrain_classes must be below the data set's {split.num_classes} "
                         f"classes (0: pretrain on all), got {config.pretrain_classes}")
    train_x, train_y = pretraining_subset(*_arrays(split.train), config.pretrain_classes)
    flat_train = TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
    flat = DatasetSplit(train=flat_train, test=flat_train, input_shape=(train_x.shape[1],),
                        num_classes=split.num_classes, name=split.name)
    sizes = (train_x.shape[1], *config.hidden, split.num_classes)
    model = build_mlp(sizes, binary="hidden", lif=train_config.lif_parameters(), seed=config.seed)
    model.layers[-1] = BinaryLinear(sizes[-2], sizes[-1], generator=torch.Generator().manual_seed(config.seed + 1))
    optimizers = make_optimizers(model, train_config)
    train_loader, _ = make_loaders(flat, train_config.batch_size, seed=config.seed)
    encoder = make_encoder(train_config.encoder, seed=config.seed)
    for epoch in range(config.train_epochs):
        train_loader.generator.manual_seed(config.seed * 7919 + epoch)
        train_epoch(model, train_loader, encoder, optimizers, train_config, split.num_classes, epoch,
                    torch.device("cpu"), progress=progress)
    return model.eval(), split


INPUT_SCALES = (255, 223, 191, 159, 127, 95, 63)  # integer grey levels per float unit, tried in this order


def compile_deployed(graph: Any, time_steps: int) -> Any:
    """The deployed network: ``graph`` compiled (profile ``bso``) at the first of :data:`INPUT_SCALES` whose
    worst-case first-layer activation fits its 16-bit register (docs/fixed-point.md §8). That bound is
    ``max_i sum_j max(q_ij, 0) * input_max * 2**e_min`` over the 8-bit weights q, a row's positive (or negative)
    weight mass times the largest grey level: a 784-pixel first layer whose rows gather enough positive weight
    (Fashion-MNIST pretrained on classes 0 - 4: 35567 at 255) exceeds it at the smallest weight exponent, and
    only fewer input levels (or weight bits) fit; ``quantize_inputs`` then uses the chosen scale. Any other
    compile error is raised at once."""
    for scale in INPUT_SCALES[:-1]:
        try:
            return compile_nir(graph, profile="bso", time_steps=time_steps, input_scale=float(scale))
        except RangeError as error:
            if "activation" not in str(error):
                raise
    return compile_nir(graph, profile="bso", time_steps=time_steps, input_scale=float(INPUT_SCALES[-1]))


def _steps(x_int: np.ndarray, time_steps: int) -> np.ndarray:
    """Direct encoding: the same image at every step, (T, N, *shape)."""
    return np.broadcast_to(x_int, (time_steps, *x_int.shape)).copy()


def fixed_predictions(fx_net: Any, x_int: np.ndarray, time_steps: int, population: int = 1) -> np.ndarray:
    """Class predictions (N,) of the fixed-point network (NumPy simulator) on integer images, T input steps +
    the latency (docs/fixed-point.md §5.2): argmax of the readout's v at the last step, summed over each
    class's ``population`` neurons (a population readout, docs/onchip-learning.md §14)."""
    output = simulate(fx_net, append_zero_steps(_steps(x_int, time_steps), fx_net.latency)).output[-1]
    if output.shape[-1] % population:
        raise ValueError(f"a readout of {output.shape[-1]} neurons has no {population} neurons per class")
    return np.argmax(output.reshape(len(output), -1, population).sum(axis=-1), axis=-1)


def fixed_accuracy(fx_net: Any, x_int: np.ndarray, labels: np.ndarray, time_steps: int,
                   population: int = 1) -> float:
    """Accuracy of :func:`fixed_predictions` against ``labels``."""
    return float(np.mean(fixed_predictions(fx_net, x_int, time_steps, population) == labels))


def _checkpoint(fx_net: Any, x_int: np.ndarray, labels: np.ndarray, config: AdaptationConfig,
                population: int) -> dict[str, float]:
    """A curve point's fixed-point accuracies of ``fx_net`` (a readout of ``population`` neurons per class):
    ``accuracy`` and, class-incremental, the new and old classes'."""
    predictions = fixed_predictions(fx_net, x_int, config.time_steps, population)
    return {"accuracy": float(np.mean(predictions == labels)),
            **class_accuracies(predictions, labels, config.pretrain_classes)}


def float_accuracy(model: Any, x: np.ndarray, labels: np.ndarray, time_steps: int) -> float:
    with torch.no_grad():
        inputs = torch.from_numpy(_steps(x, time_steps))
        predictions = model(inputs).sum(0).argmax(-1).numpy()
    return float(np.mean(predictions == labels))


def _error_mapping(k_scale: float, target: float) -> tuple[int, int, int, float]:
    """(error_shift, error_target, error_bits, error_scale E) for a readout of integer scale K (the
    compiler's ``scale``, K = m 2**e): its current is c = 64 K y for the float output y, and e = clip(c >>
    error_shift, ...) (docs/onchip-learning.md §5). The largest shift for which E = 64 K / 2**shift is still
    an integer makes c >> shift = E y exact; error_target = round(A E), and error_bits hold 2 error_target
    (§9)."""
    shift = 0
    while (64 * k_scale / 2 ** (shift + 1)).is_integer():
        shift += 1
    scale = 64 * k_scale / 2 ** shift
    while shift > 0 and target * scale >= 1 << 13:  # keep 2 A E within the 16-bit error register
        shift, scale = shift + 1, scale / 2
    error_target = max(1, round(target * scale))
    bits = max(8, (2 * error_target).bit_length() + 1)
    return shift, error_target, bits, scale


def _flip_agreement(fixed_events: np.ndarray, float_events: np.ndarray) -> tuple[float, float, float]:
    fixed = {tuple(row) for row in fixed_events.tolist()}
    floating = {tuple(row) for row in float_events.tolist()}
    common = len(fixed & floating)
    precision = common / len(fixed) if fixed else float(not floating)
    recall = common / len(floating) if floating else float(not fixed)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall


class _FloatLearner:
    """The float model adapting its readout with the real float optimizer (bso_deploy.optim TBSO / BSO) on
    the float form of the three factors: trace (the hidden LIF layer's OTTT trace), surrogate 1 (readout),
    error clip(y, -A, A) - target (docs/onchip-learning.md §5, §12). Flip events are numbered like the
    integer learner's: step = time-step index + the readout's first input step (the latency)."""

    def __init__(self, model: Any, config: AdaptationConfig, target: float, step_offset: int) -> None:
        self.model, self.target, self.offset, self.config = model, target, step_offset, config
        self.readout = model.layers[-1]
        params = [self.readout.weight]
        if config.variant == "tbso":
            self.optimizer = TBSO(params, momentum=config.momentum, variance_decay=config.variance_decay,
                                  threshold=config.threshold, time_steps=config.time_steps)
        else:
            self.optimizer = BSO(params, momentum=config.momentum, threshold=config.threshold)
        self.counter = 0
        self._torch = torch

    def run(self, x: np.ndarray, labels: np.ndarray, first_sample: int, hidden: np.ndarray | None = None) -> np.ndarray:
        """Adapt on float images ``x`` (N, ...); with ``hidden`` (T, N, n_in) 0/1, the readout's input spikes
        are those given (the chip's) instead of the float front's. Returns flip events (E, 4)."""
        torch = self._torch
        events = []
        front = self.model.layers[:-1]
        lif = front[-1]
        decay = lif.params.decay
        group = self.optimizer.param_groups[0]
        threshold = group["threshold"]
        weight = self.readout.weight
        with torch.no_grad():
            for n in range(len(x)):
                for layer in front:
                    if hasattr(layer, "reset_state"):
                        layer.reset_state()
                image = torch.from_numpy(x[n:n + 1])
                trace = torch.zeros((1, weight.shape[1]))
                for t in range(self.config.time_steps):
                    if hidden is None:
                        spikes = front(image)
                        trace = lif.trace
                    else:
                        spikes = torch.from_numpy(hidden[t, n:n + 1].astype(np.float32))
                        trace = decay * trace + spikes  # the OTTT trace, as bso_deploy.neuron computes it
                    output = self.readout(spikes)[0]
                    target = torch.full_like(output, -self.target)
                    target[int(labels[n])] = self.target
                    error = output.clamp(-self.target, self.target) - target
                    weight.grad = torch.outer(error, trace[0])
                    before = weight.detach().clone()
                    self.counter += 1
                    group["threshold"] = threshold if self.counter % self.config.t_epoch == 0 else math.inf
                    self.optimizer.step(t=t)
                    rows, cols = torch.nonzero(weight != before, as_tuple=True)
                    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                        events.append((first_sample + n, t + self.offset, i, j))
        group["threshold"] = threshold
        return np.asarray(events, dtype=np.int64).reshape(-1, 4)


def _stream(config: AdaptationConfig, count: int) -> np.ndarray:
    """Indices of the adaptation stream: ``samples`` shifted training images in a seeded order (cycling
    through the set if it is shorter), repeated ``passes`` times."""
    rng = np.random.default_rng(config.seed + 1)
    order = np.concatenate([rng.permutation(count) for _ in range(-(-config.samples // count))])[:config.samples]
    return np.tile(order, config.passes)


def run_adaptation(config: AdaptationConfig, progress: bool = True,
                   pretrained: tuple[Any, Any] | None = None) -> AdaptationResult:
    """Run the adaptation scenario of ``config`` (module docstring) and return what it measured.
    ``pretrained``: (model, split) of an earlier ``_pretrain`` of the same pretraining fields (dataset, hidden,
    time_steps, train_epochs, train_batch_size, seed, pretrain_classes), used (copied) instead of training again."""
    if not isinstance(config, AdaptationConfig):
        raise TypeError(f"config must be an AdaptationConfig, not {type(config).__name__}")
    make_learner = get_learner(config.backend)  # an unknown backend fails before the training
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    model, split = copy.deepcopy(pretrained) if pretrained is not None else _pretrain(config, progress)
    seconds["train"] = time.perf_counter() - start
    with warnings.catch_warnings():  # the subtractive reset travels in node metadata, which compile_nir reads
        warnings.filterwarnings("ignore", category=NIRExportWarning)
        graph = to_nir(model)
    fx_net = compile_deployed(graph, config.time_steps)
    report = fx_net.quantization[-1]
    train_x, train_y = _arrays(split.train)
    test_x, test_y = _arrays(split.test)
    if config.eval_samples:
        test_x, test_y = test_x[:config.eval_samples], test_y[:config.eval_samples]
    shape = image_shape(split.input_shape)
    shifted_train, shifted_test = shift_inputs(train_x, config.shift, shape), shift_inputs(test_x, config.shift, shape)
    test_int = quantize_inputs(fx_net, shifted_test)
    T = config.time_steps
    accuracy_unshifted = fixed_accuracy(fx_net, quantize_inputs(fx_net, test_x), test_y, T)
    before = _checkpoint(fx_net, test_int, test_y, config, population=1)  # the deployed readout
    accuracy_before = before["accuracy"]
    float_before = float_accuracy(model, shifted_test, test_y, T)

    error_shift, error_target, error_bits, error_scale = _error_mapping(float(report["scale"]), config.error_target)
    trace_increment = LearningRule.trace_increment
    rule = LearningRule.from_float(
        config.variant, momentum=config.momentum, threshold=config.threshold, variance_decay=config.variance_decay,
        time_steps=T, trace_scale=trace_increment, error_scale=error_scale, error_shift=error_shift,
        error_target=error_target, error_bits=error_bits, momentum_bits=config.momentum_bits,
        precision_bits=config.precision_bits,
        rounding=config.rounding, t_epoch=config.t_epoch, seed=config.seed,
        **learning_fields(config, fx_net, error_shift, error_scale, error_target))
    float_target = error_target / error_scale  # the float margin the integer one represents exactly
    if config.feedback_alignment:  # the last hidden layer learns too (§18), chunk by chunk with the readout
        learner = FeedbackAlignmentLearner(make_learner, learning_network(fx_net, config, error_shift), rule,
                                           hidden_rule(rule, fx_net, config, error_scale))
    else:
        learner = make_learner(learning_network(fx_net, config, error_shift), rule, layer=-1)
    float_model = copy.deepcopy(model)
    window = learning_window(len(fx_net.layers) - 1, rule)
    float_learner = _FloatLearner(float_model, config, float_target, window.start)
    rule_model = copy.deepcopy(model)  # the float rule on the chip's own spike stream (§12)
    rule_learner = _FloatLearner(rule_model, config, float_target, window.start)
    front_net = replace(fx_net, layers=fx_net.layers[:-1], quantization=fx_net.quantization[:-1])
    order = _stream(config, len(train_x))
    chunks = np.array_split(np.arange(len(order)), min(config.curve_points, len(order)))
    stream_int = quantize_inputs(fx_net, shifted_train[order])
    curve = [{"samples": 0, **before, "float_accuracy": float_before}]
    fixed_events, float_events, rule_events = [], [], []
    stream_correct = 0
    seconds["fixed_learning"] = seconds["float_learning"] = 0.0
    bar = tqdm(total=len(order), desc=f"on-chip learning ({config.backend})", disable=None if progress else True,
               leave=False)
    try:  # a Lava learner holds worker processes: stop them also when the stream fails or is interrupted
        for chunk in chunks:
            if not len(chunk):
                continue
            tick = time.perf_counter()
            inputs = _steps(stream_int[chunk], T)
            record = learner.run(inputs, labels=train_y[order][chunk])
            events = record.flip_events.copy()
            events[:, 0] += chunk[0]
            fixed_events.append(events)
            tock = time.perf_counter()
            float_events.append(float_learner.run(shifted_train[order][chunk], train_y[order][chunk], int(chunk[0])))
            seconds["fixed_learning"] += tock - tick
            chip_hidden = simulate(front_net, append_zero_steps(inputs, len(fx_net.layers))).spikes[-1]
            rule_events.append(rule_learner.run(shifted_train[order][chunk], train_y[order][chunk], int(chunk[0]),
                                                hidden=chip_hidden[window.start - 1:window.stop - 1]))
            seconds["float_learning"] += time.perf_counter() - tock
            stream_correct += int(np.sum(record.predictions == train_y[order][chunk]))
            curve.append({"samples": int(chunk[-1] + 1), "stream_accuracy": stream_correct / int(chunk[-1] + 1),
                          **_checkpoint(learner.network(), test_int, test_y, config, config.population),
                          "float_accuracy": float_accuracy(float_model, shifted_test, test_y, T)})
            bar.update(len(chunk))
        bar.close()
    finally:
        close = getattr(learner, "close", None)
        if close is not None:
            close()
    stream_spikes = readout_spikes(fx_net, _steps(stream_int, T), T)  # the references' input (§16)
    test_counts = readout_counts(fx_net, _steps(test_int, T), T)
    fixed_all = np.concatenate(fixed_events) if fixed_events else np.zeros((0, 4), np.int64)
    float_all = np.concatenate(float_events) if float_events else np.zeros((0, 4), np.int64)
    rule_all = np.concatenate(rule_events) if rule_events else np.zeros((0, 4), np.int64)
    f1, precision, recall = _flip_agreement(fixed_all, rule_all)
    e2e_f1, e2e_precision, e2e_recall = _flip_agreement(fixed_all, float_all)
    rule_signs, float_signs = (np.repeat(adapted.layers[-1].weight.detach().numpy().astype(np.int64),
                                         config.population, axis=0) for adapted in (rule_model, float_model))
    learned = np.asarray(learner.state.weight, dtype=np.int64)
    seconds["total"] = time.perf_counter() - start
    return AdaptationResult(
        config=config, backend=config.backend, accuracy_unshifted=accuracy_unshifted,
        accuracy_before=accuracy_before, accuracy_after=curve[-1]["accuracy"], float_accuracy_before=float_before,
        float_accuracy_after=curve[-1]["float_accuracy"], flip_agreement=f1, flip_precision=precision,
        flip_recall=recall, flips=len(fixed_all), float_flips=len(float_all),
        sign_agreement=float(np.mean(rule_signs == learned)), bits_per_synapse=rule.bits_per_synapse,
        float_bits_per_synapse=33, curve=curve, rule=rule.to_dict(), seconds=seconds,
        details={"learning_layer": report, "input_scale": fx_net.input_scale, "float_error_target": float_target,
                 "error_scale": error_scale,
                 "stream_samples": len(order), "test_samples": len(test_y),
                 "end_to_end_flip_agreement": e2e_f1, "end_to_end_flip_precision": e2e_precision,
                 "end_to_end_flip_recall": e2e_recall,
                 "end_to_end_sign_agreement": float(np.mean(float_signs == learned)),
                 "rule_float_flips": len(rule_all),
                 # the float rule is one neuron per class without a bias: its flips are comparable for P = 1 only
                 "float_rule_comparable": config.population == 1 and not config.learn_bias
                 and not config.feedback_alignment,
                 "hidden_flips": getattr(learner, "hidden_flips", 0),
                 "float_rule_offline_accuracy": float_rule_reference(  # §16: the float rule, REFERENCE_PASSES passes
                     _FloatLearner(copy.deepcopy(model), config, float_target, window.start), shifted_train[order],
                     train_y[order], stream_spikes, test_counts, test_y)},
        reference_accuracy=logistic_reference(stream_spikes.sum(axis=0).astype(np.float64), train_y[order],
                                              test_counts, test_y, split.num_classes, bias=config.learn_bias,
                                              seed=config.seed),
        scenario=scenario_name(config.shift, config.pretrain_classes), bits_per_bias=rule.bits_per_bias,
        **{f"{key}_{when}": point[key] for when, point in (("before", curve[0]), ("after", curve[-1]))
           for key in ("new_class_accuracy", "old_class_accuracy") if key in point})
