"""``bso-deploy learn``: the on-chip adaptation scenario (:mod:`bso_deploy.experiments.adaptation`) for the
parsed options; a summary (or one JSON object) on stdout, learn.json and learn.png in --out."""

from __future__ import annotations

import argparse
import json

from ..cli_train_parsers import learn_config_values
from ..experiments.adaptation import AdaptationConfig, run_adaptation
from ..experiments.learn_report import format_learn_summary, jsonable, save_learn_outputs


def learn_config_from_args(args: argparse.Namespace) -> AdaptationConfig:
    """The AdaptationConfig of parsed ``bso-deploy learn`` arguments."""
    return AdaptationConfig(**learn_config_values(args))


def learn_command(args: argparse.Namespace) -> int:
    result = jsonable(run_adaptation(learn_config_from_args(args), progress=not args.no_progress).to_dict())
    paths = save_learn_outputs(result, args.out)
    if args.json:
        print(json.dumps({**result, "out": paths}, allow_nan=False))
    else:
        print(format_learn_summary(result))
        print(f"wrote {paths['json']} and {paths['plot']}")
    return 0
