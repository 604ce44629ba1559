"""Config commands: config set, get, list."""

from __future__ import annotations

from argparse import Namespace

from queuectl import config as cfgmod
from queuectl.cli import render
from queuectl.cli.jobs import open_db


def set_(args: Namespace) -> int:
    key = cfgmod.canonical(args.key)
    value = cfgmod.parse_value(key, args.value)
    with open_db(args, create=True) as store:
        store.config_set(key, value)
    if args.json:
        render.emit_json({"key": key, "value": value})
    else:
        print(f"{key} = {cfgmod.render(value)}")
    return 0


def get(args: Namespace) -> int:
    key = cfgmod.canonical(args.key)
    with open_db(args) as store:
        print(cfgmod.render(store.config()[key]))
    return 0


def list_(args: Namespace) -> int:
    with open_db(args) as store:
        values = store.config()
    if args.json:
        render.emit_json(values)
        return 0
    render.table(["KEY", "VALUE", "DEFAULT", "MEANING"],
                 [[k, cfgmod.render(v), cfgmod.render(cfgmod.KEYS[k].default),
                   cfgmod.KEYS[k].help] for k, v in values.items()])
    return 0
