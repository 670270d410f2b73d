"""The ``bso-deploy`` parser (bso_deploy/cli.py, cli_*_parsers.py): every option has help text, every option
with a fixed set of values offers it as choices (taken from its one definition), the defaults are the
configs' defaults, ``--version``, one-line errors for unknown names, and no torch import to print help."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from bso_deploy import __version__, options
from bso_deploy.cli import COMMANDS, build_parser, command_name, main, resolve_command
from bso_deploy.cli_args import CommaSeparatedChoices, NamedChoice

# String options whose values are not a fixed set: paths, sizes, devices, T lists.
FREE_FORM = {"out", "checkpoint", "model", "inputs", "labels", "calibrate_on", "data_root", "device", "hidden",
             "time_steps", "cache"}
HELP_ACTIONS = (argparse._HelpAction, argparse._VersionAction)


def parsers(parser: argparse.ArgumentParser | None = None, name: str = ""):
    """(command name, parser) for every (sub)command, ``bench sim`` included."""
    parser = parser or build_parser()
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}".strip())


def options_of(parser: argparse.ArgumentParser):
    return [action for action in parser._actions
            if not isinstance(action, (*HELP_ACTIONS, argparse._SubParsersAction))]


def leaf_commands() -> dict[str, argparse.ArgumentParser]:
    return {name: parser for name, parser in parsers() if name and not any(
        isinstance(action, argparse._SubParsersAction) for action in parser._actions)}


def test_every_option_has_help_and_every_command_a_description() -> None:
    for name, parser in parsers():
        assert parser.description, f"bso-deploy {name} has no description"
        for action in options_of(parser):
            assert action.help and len(action.help) > 8, f"bso-deploy {name} {action.option_strings} has no help"


def test_every_option_with_a_fixed_set_of_values_has_choices() -> None:
    checked = 0
    for name, parser in parsers():
        for action in options_of(parser):
            takes_text = (action.nargs != 0 and action.type in (None, str)) or isinstance(action.type, NamedChoice)
            if not takes_text or action.dest in FREE_FORM:
                continue
            checked += 1
            if isinstance(action.type, CommaSeparatedChoices):
                assert action.choices is None  # argparse cannot check a list; the type does
            else:
                assert action.choices, f"bso-deploy {name} {action.option_strings[0]} has no choices"
                assert isinstance(action.type, NamedChoice) or action.dest == "record", (name, action.dest)
    assert checked >= 20


def choices(command: str, flag: str) -> tuple[str, ...]:
    action = next(a for a in leaf_commands()[command]._actions if flag in a.option_strings)
    return action.type.names if isinstance(action.type, NamedChoice) else tuple(action.choices)


def test_choices_come_from_the_one_definition_of_each_set() -> None:
    from bso_deploy.export import onnx
    from bso_deploy.hardware import backends, learners, learning_rule, scaling, spec

    from bso_deploy import config, models, neuron
    from bso_deploy.bench import learn as bench_learn
    from bso_deploy.bench import learn_table, thirdparty
    from bso_deploy.experiments import adaptation

    assert (config.METHODS, config.DATASET_NAMES, config.ENCODER_NAMES) == (
        options.METHODS, options.DATASET_NAMES, options.ENCODER_NAMES)
    assert config.METHODS is options.METHODS and models.MODELS is options.MODELS
    assert models.BINARY_CHOICES is options.BINARY_CHOICES and neuron.RESET_MODES is options.RESET_MODES
    assert backends.SCALINGS is options.SCALINGS and scaling.SCALINGS is options.SCALINGS
    assert adaptation.SHIFTS is options.ADAPTATION_SHIFTS and thirdparty.NETWORKS is options.DEPLOY_BENCH_NETWORKS
    assert bench_learn.BACKENDS is options.LEARNER_NAMES
    assert tuple(learn_table.SCENARIOS) == options.LEARN_BENCH_SCENARIOS
    assert tuple(learn_table.LEARNERS) == options.LEARN_BENCH_LEARNERS
    assert choices("bench learn", "--scenarios") == options.LEARN_BENCH_SCENARIOS
    # tables of implementations: their keys are the names the command line offers
    assert tuple(backends.BACKENDS) == options.BACKEND_NAMES
    assert options.FIXED_BACKEND_NAMES == tuple(name for name, b in backends.BACKENDS.items() if b.kind == "fixed")
    assert tuple(learners.LEARNERS) == options.LEARNER_NAMES
    assert set(learning_rule.VARIANTS) == set(options.LEARNING_VARIANTS)
    assert set(learning_rule.ROUNDINGS) == set(options.LEARNING_ROUNDINGS)
    assert onnx.SEMANTICS is options.ONNX_SEMANTICS
    for command in ("run", "parity", "compile", "export"):
        assert choices(command, "--profile") == tuple(spec.PROFILES)
    assert choices("train", "--method") == options.METHODS and choices("train", "--model") == options.MODELS
    assert choices("run", "--backend") == options.BACKEND_NAMES
    assert choices("parity", "--backends") == options.FIXED_BACKEND_NAMES
    assert choices("learn", "--backend") == options.LEARNER_NAMES
    assert choices("bench deploy", "--networks") == options.DEPLOY_BENCH_NETWORKS


def parsed_defaults(*command: str) -> dict:
    required = {"train": ["--out", "x"]}.get(command[0], [])
    return vars(build_parser().parse_args([*command, *required]))


def assert_defaults(values: dict, config: object, renamed: dict[str, str] | None = None) -> None:
    renamed = renamed or {}
    for field in dataclasses.fields(config):
        flag = renamed.get(field.name, field.name)
        if flag in values:
            expected = getattr(config, field.name)
            value = values[flag]
            if isinstance(expected, tuple):
                value = tuple(type(expected[0])(item) for item in str(value).split(",")) if isinstance(
                    value, str) else value
            assert value == expected, f"{flag}: parser default {value!r}, {type(config).__name__} {expected!r}"


def test_the_parser_defaults_are_the_configs_defaults() -> None:
    from bso_deploy.bench.deploy import QUICK_TEST_SAMPLES, DeployBenchConfig
    from bso_deploy.bench.learn import LearnBenchConfig
    from bso_deploy.bench.sim import SimBenchConfig
    from bso_deploy.bench.train import TrainBenchConfig
    from bso_deploy.cli_bench_parsers import DEPLOY_QUICK_TEST_SAMPLES
    from bso_deploy.config import TrainConfig
    from bso_deploy.experiments.adaptation import AdaptationConfig

    train = parsed_defaults("train")
    assert_defaults(train, TrainConfig())
    assert len(set(train) & {f.name for f in dataclasses.fields(TrainConfig)}) == 27
    learn = parsed_defaults("learn")
    assert {f.name for f in dataclasses.fields(AdaptationConfig)} == set(learn) - {"command", "out", "json",
                                                                                   "no_progress"}
    assert_defaults(learn, AdaptationConfig())
    out = {"out_dir": "out"}
    assert_defaults(parsed_defaults("bench", "train"), TrainBenchConfig(), out)
    assert_defaults(parsed_defaults("bench", "sim"), SimBenchConfig(), {
        **out, "lava_streamed_samples": "lava_samples", "lava_per_sample_runs": "lava_fresh_runs"})
    assert_defaults(parsed_defaults("bench", "learn"), LearnBenchConfig(), out)
    assert_defaults(parsed_defaults("bench", "deploy"), DeployBenchConfig(), {**out, "cache_dir": "cache"})
    assert DEPLOY_QUICK_TEST_SAMPLES == QUICK_TEST_SAMPLES
    from bso_deploy.bench.data_scale import ScaleBenchConfig
    assert_defaults(parsed_defaults("bench", "scale"), ScaleBenchConfig(), {**out, "cache_dir": "cache"})


def test_every_command_has_an_implementation() -> None:
    names = set()
    for command in leaf_commands():
        args = argparse.Namespace(command=command.split()[0], bench=command.split()[-1])
        names.add(command_name(args))
        assert callable(resolve_command(command)), command
    assert names == set(COMMANDS)


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bso-deploy {__version__}"


@pytest.mark.parametrize("argv,message", [
    (["train", "--method", "adam", "--out", "x"], "bso-deploy train: error: argument --method: unknown method "
                                                  "'adam'; valid: tbso, bso, bop, bptt-ste"),
    (["run", "m.nir", "--backend", "gpu", "--inputs", "x.npy", "--out", "o.npz"],
     "bso-deploy run: error: argument --backend: unknown backend 'gpu'; valid backends: float, sim, torch, lava"),
    (["parity", "m.nir", "--backends", "sim,gpu"], "bso-deploy parity: error: argument --backends: unknown backend "
                                                   "'gpu'; valid backends: sim, torch, lava"),
    (["compile", "m.nir", "--out", "o.npz", "--profile", "truenorth"], "argument --profile: unknown profile "
                                                                       "'truenorth'; valid: loihi, bso"),
    (["bench", "deploy", "--networks", ","], "bso-deploy bench deploy: error: argument --networks: give one or more "
                                             "networks"),
    (["bench", "fly"], "bso-deploy bench: error: argument {train,sim,learn,deploy,data,scale,fuzz}: invalid choice: "
                       "'fly' (choose from 'train', 'sim', 'learn', 'deploy', 'data', 'scale', 'fuzz')"),
    (["fly"], "bso-deploy: error: argument COMMAND: invalid choice: 'fly' (choose from 'train', "),
])
def test_an_unknown_name_is_a_one_line_error_listing_the_valid_ones(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_printing_help_imports_no_torch() -> None:
    commands = [[], *(name.split() for name in leaf_commands()), ["bench"]]
    code = f"""
import contextlib, io, json, sys
from bso_deploy.cli import main
heavy = {{}}
for command in {commands!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        main([*command, "--help"])
    assert "usage: bso-deploy" in out.getvalue(), command
    heavy[" ".join(command)] = sorted(m for m in ("torch", "nir", "h5py", "lava") if m in sys.modules)
print(json.dumps(heavy))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {" ".join(command): [] for command in commands}


def test_the_console_script_exits_2_on_a_bad_option() -> None:
    result = run_python("import sys; from bso_deploy.cli import main; sys.exit(main(['learn', '--shift', 'up']))")
    assert result.returncode == 2
    assert result.stderr.strip() == ("bso-deploy learn: error: argument --shift: unknown shift 'up'; valid: invert, "
                                     "rotate, contrast, shift, none")
