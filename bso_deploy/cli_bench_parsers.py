"""The options of ``bso-deploy bench train|sim|learn|deploy`` (argparse only, no torch: ``--help`` is fast).
The defaults are those of the benchmarks' configs (``bso_deploy.bench.*``), which import torch; the test
``tests/test_cli.py`` checks that they agree."""

from __future__ import annotations

from .cli_args import NamedCounts, add_choice, add_choice_list
from .options import (
    DATA_BENCH_DATASETS,
    DATA_BENCH_METHODS,
    DATA_BENCH_MODELS,
    DEPLOY_BENCH_NETWORKS,
    LEARN_BENCH_DEFAULT_LEARNERS,
    LEARN_BENCH_DEFAULT_SCENARIOS,
    LEARN_BENCH_LEARNERS,
    LEARN_BENCH_SCENARIOS,
    LEARNER_NAMES,
    LEARNING_VARIANTS,
    LR_SCHEDULES,
    METHODS,
    MODELS,
)

BENCH_DESCRIPTION = """\
Benchmarks that print a table and write their measurements as JSON (and a figure) under --out (default
bench/): train (memory, speed and accuracy of the training methods), sim (samples per second of the
fixed-point backends), learn (learning steps per second of the on-chip rule), deploy (networks made with
snnTorch, Sinabs and lava-dl, deployed: accuracy and parity), data (MLP and CNN trained on a real data set with
each method, deployed on the whole test set, against snnTorch's BPTT), fuzz (hostile inputs: clean errors or
crashes, silent garbage, hangs)."""

DEPLOY_QUICK_TEST_SAMPLES = 60  # bench.deploy.QUICK_TEST_SAMPLES (tests/test_cli.py checks)


def _add_train(kinds) -> None:
    train = kinds.add_parser("train", help="memory, state, checkpoint size, speed and accuracy per method and T",
                             description="Trains every method at every T (digits MLP, or a VGG on random 32x32 "
                                         "inputs for memory only); writes OUT/train.json (vgg: "
                                         "OUT/train_vgg_memory.json) and figures.")
    add_choice_list(train, "--methods", METHODS, "method", default=",".join(METHODS), help="training methods")
    train.add_argument("--time-steps", default="2,4,8,16,32", help="values of T, comma separated (default "
                       "%(default)s)")
    train.add_argument("--epochs", type=int, default=12, help="training budget per case (accuracy; default "
                       "%(default)s)")
    add_choice(train, "--model", MODELS, "model", default="mlp",
               help="mlp (digits, full benchmark) or vgg (random 32x32, memory only; default %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="seed of every run (default %(default)s)")
    train.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N (default %(default)s)")
    train.add_argument("--out", default="bench", help="output directory (default %(default)s)")
    train.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default %(default)s)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_sim(kinds) -> None:
    sim = kinds.add_parser("sim", help="samples per second: simulator, torch reference, Lava built-ins",
                           description="Trains a small digits network, compiles it and times every fixed-point "
                                       "backend on the same inputs; writes OUT/sim.json, OUT/sim_summary.json and "
                                       "OUT/sim.png.")
    sim.add_argument("--time-steps", type=int, default=8, help="time steps per sample (default %(default)s)")
    sim.add_argument("--batch", type=int, default=256, help="samples per timed call (default %(default)s)")
    sim.add_argument("--repeats", type=int, default=9, help="timed calls per in-process row; the fastest counts")
    sim.add_argument("--lava-samples", type=int, default=20, help="samples streamed through one Lava network")
    sim.add_argument("--lava-fresh-runs", type=int, default=3, help="samples run with a fresh Lava build each")
    sim.add_argument("--epochs", type=int, default=3, help="T-BSO training epochs of the benchmarked bso network")
    sim.add_argument("--seed", type=int, default=0, help="seed of the training and inputs (default %(default)s)")
    sim.add_argument("--threads", type=int, default=1, help="torch and NumPy BLAS threads for every row")
    sim.add_argument("--out", default="bench", help="output directory (default %(default)s)")
    sim.add_argument("--lava-copies", type=int, default=16,
                     help="also time our Lava processes with this many network copies per Lava step (1: skip)")
    sim.add_argument("--no-lava-deploy", action="store_true",
                     help="skip the row of our own Lava processes (hardware/lava/deploy.py) on the bso network")
    sim.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_learn(kinds) -> None:
    learn = kinds.add_parser("learn", help="learning steps per second: simulator, torch reference, Lava process; "
                             "the on-chip adaptation scenarios x learner configurations",
                             description="Times the on-chip learning rule on a stream of digits samples on each "
                                         "backend, then runs the adaptation scenario table (docs/onchip-learning.md "
                                         "§19) and checks issue 14's targets; writes OUT/learn.json and "
                                         "OUT/learn.png.")
    add_choice_list(learn, "--backends", LEARNER_NAMES, "learner backend", default=",".join(LEARNER_NAMES),
                    help="backends to time")
    learn.add_argument("--samples", type=int, default=200, help="samples of the learning stream (default "
                       "%(default)s)")
    learn.add_argument("--time-steps", type=int, default=4, help="time steps per sample (default %(default)s)")
    learn.add_argument("--hidden", type=int, default=128, help="inputs of the learning layer (default %(default)s)")
    add_choice(learn, "--variant", LEARNING_VARIANTS, "variant", default="tbso",
               help="learning rule (default %(default)s)")
    learn.add_argument("--seed", type=int, default=0, help="seed of the stream and weights (default %(default)s)")
    learn.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default %(default)s)")
    add_choice_list(learn, "--scenarios", LEARN_BENCH_SCENARIOS, "scenario", empty_ok=True,
                    default=",".join(LEARN_BENCH_DEFAULT_SCENARIOS),
                    help="scenarios of the table ('' skips the table)")
    add_choice_list(learn, "--learners", LEARN_BENCH_LEARNERS, "learner configuration",
                    default=",".join(LEARN_BENCH_DEFAULT_LEARNERS),
                    help="learner configurations of the table (bso_deploy/bench/learn_table.py)")
    learn.add_argument("--table-samples", type=int, default=1000,
                       help="stream samples of each scenario row (default %(default)s)")
    learn.add_argument("--out", default="bench", help="output directory (default %(default)s)")
    learn.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_deploy(kinds) -> None:
    deploy = kinds.add_parser(
        "deploy", help="networks made by snnTorch, Sinabs, lava-dl: accuracy and parity deployed",
        description="Trains (or loads from --cache) networks with snnTorch, Sinabs and lava-dl, exports them "
                    "with those tools' own NIR/netx exporters, deploys them to fixed point and compares float "
                    "and fixed accuracy and spikes; writes OUT/deploy.json and OUT/deploy.png.")
    add_choice_list(deploy, "--networks", DEPLOY_BENCH_NETWORKS, "network", default=",".join(DEPLOY_BENCH_NETWORKS),
                    help="networks to deploy", valid="valid networks")
    deploy.add_argument("--seed", type=int, default=0, help="training, data split and event streams")
    deploy.add_argument("--lava-samples", type=int, default=20, help="test samples also run on Lava (0: none)")
    deploy.add_argument("--calibration-samples", type=int, default=64,
                        help="training samples the compiler calibrates on (both scalings take the input range there)")
    deploy.add_argument("--test-samples", type=int, default=None, help="evaluate the first N test samples "
                        f"(default: all; --quick: {DEPLOY_QUICK_TEST_SAMPLES})")
    deploy.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    deploy.add_argument("--out", default="bench", help="output directory (deploy.json, deploy.png)")
    deploy.add_argument("--cache", default="runs/bench-deploy-cache",
                        help="trained models, keyed by network, seed, sizes")
    deploy.add_argument("--quick", action="store_true", help="tiny networks and few samples (a test, not figures)")
    deploy.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_data(kinds) -> None:
    data = kinds.add_parser(
        "data", help="MLP and CNN on a real data set: accuracy, fixed point, speed and memory vs snnTorch",
        description="Trains (or loads from --cache) each model with each method, deploys it in profile bso on the "
                    "whole test set (simulator against the float torch model), measures training throughput "
                    "and activation memory against snnTorch's BPTT on the same float architecture; writes "
                    "OUT/data_DATASET.json and OUT/data_DATASET.png.")
    add_choice(data, "--dataset", DATA_BENCH_DATASETS, "data set", default="fashion-mnist",
               help="data set (default %(default)s)")
    add_choice_list(data, "--models", DATA_BENCH_MODELS, "model", default=",".join(DATA_BENCH_MODELS),
                    help="models to train")
    add_choice_list(data, "--methods", DATA_BENCH_METHODS, "method", default=",".join(DATA_BENCH_METHODS),
                    help="training methods")
    data.add_argument("--epochs", type=int, default=10, help="training epochs per model (default %(default)s)")
    data.add_argument("--cnn-epochs", type=int, default=None, help="training epochs of the CNN (default: --epochs)")
    data.add_argument("--cnn-train-samples", type=int, default=None,
                      help="the CNN trains on the first N training samples (default: all)")
    data.add_argument("--cnn-method-epochs", type=NamedCounts("method", DATA_BENCH_METHODS), default=(),
                      metavar="METHOD=N[,METHOD=N...]",
                      help="training epochs of the CNN for these methods (e.g. bso=1,bptt-ste=1; default: "
                           "--cnn-epochs for every method)")
    data.add_argument("--time-steps", type=int, default=4, help="time steps of training and deployment "
                      "(default %(default)s)")
    data.add_argument("--batch-size", type=int, default=128, help="training batch size (default %(default)s)")
    add_choice(data, "--lr-schedule", LR_SCHEDULES, "learning-rate schedule", default="cosine",
               help="learning rate of the full-precision weights per epoch (default %(default)s)")
    data.add_argument("--seed", type=int, default=0, help="seed of every run (default %(default)s)")
    data.add_argument("--throughput-batches", type=int, default=10,
                      help="timed training batches per throughput figure, after one warm-up (default %(default)s)")
    data.add_argument("--throughput-rounds", type=int, default=3,
                      help="rounds in which every method and snnTorch are timed in turn; figures are medians over "
                           "rounds (default %(default)s)")
    _add_data_run_options(data, "output directory (data_DATASET.json, data_DATASET.png)",
                          "trained models and their deployment figures, keyed by the training config")
    data.add_argument("--quick", action="store_true", help="1 epoch, 2 timed batches (a test, not figures)")
    data.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_data_run_options(parser, out_help: str, cache_help: str) -> None:
    """--threads, --data-root, --out and --cache, as `bench data` and `bench scale` (which share the cache) take
    them."""
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default %(default)s)")
    parser.add_argument("--data-root", default=None, help="folder of the data set files (default: the loader's)")
    parser.add_argument("--out", default="bench", help=out_help)
    parser.add_argument("--cache", default="runs/bench-data-cache", help=cache_help)


def _add_scale(kinds) -> None:
    scale = kinds.add_parser(
        "scale", help="deployment at scale: parity on the whole test set, Lava, simulator vs float torch",
        description="For the T-BSO MLP and CNN of `bench data` (its cache; trained when absent): parity simulator "
                    "vs torch reference on the whole test set, Lava on --lava-samples images, fixed and float "
                    "accuracy, simulator vs float torch time; writes OUT/parity_DATASET.json.")
    add_choice(scale, "--dataset", DATA_BENCH_DATASETS, "data set", default="fashion-mnist",
               help="data set (default %(default)s)")
    add_choice_list(scale, "--models", DATA_BENCH_MODELS, "model", default=",".join(DATA_BENCH_MODELS),
                    help="models to deploy")
    scale.add_argument("--epochs", type=int, default=1, help="training epochs of the MLP when not cached "
                       "(default %(default)s)")
    scale.add_argument("--cnn-epochs", type=int, default=1, help="training epochs of the CNN when not cached "
                       "(default %(default)s)")
    scale.add_argument("--cnn-train-samples", type=int, default=15000,
                       help="the CNN trains on the first N training images (0: all; default %(default)s)")
    scale.add_argument("--test-samples", type=int, default=10000, help="test images of the parity check "
                       "(default %(default)s)")
    scale.add_argument("--lava-samples", type=int, default=200, help="test images also run on Lava (0: none; "
                       "default %(default)s)")
    _add_data_run_options(scale, "output directory (parity_DATASET.json)",
                          "trained models, shared with bench data (default %(default)s)")
    scale.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_fuzz(kinds) -> None:
    fuzz = kinds.add_parser(
        "fuzz", help="hostile inputs: clean errors, accepted valid files, crashes, silent garbage, hangs",
        description="Runs generated malformed (and valid) NIR, netx, compiled-network, input, checkpoint and "
                    "size-limit cases through the commands and the Python API, each in a forked child with a "
                    "timeout, then injects faults into Lava runs and counts leaked processes; prints a table per "
                    "family and writes --out (default bench/fuzz.json).")
    fuzz.add_argument("--cases", type=int, default=3000, help="cases in total, spread over the families "
                      "(default %(default)s)")
    fuzz.add_argument("--seed", type=int, default=0, help="seed of the generated cases (default %(default)s)")
    fuzz.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang "
                      "(default %(default)s)")
    fuzz.add_argument("--lava-faults", type=int, default=20, help="faults injected into Lava runs (0: none; "
                      "default %(default)s)")
    fuzz.add_argument("--out", default="bench/fuzz.json", help="the JSON report (default %(default)s)")
    fuzz.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_bench_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that print a table and write JSON under bench/",
                                   description=BENCH_DESCRIPTION)
    kinds = parser.add_subparsers(dest="bench", required=True, metavar="{train,sim,learn,deploy,data,scale,fuzz}")
    for add in (_add_train, _add_sim, _add_learn, _add_deploy, _add_data, _add_scale, _add_fuzz):
        add(kinds)
