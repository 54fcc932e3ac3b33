"""``driftline operators keygen|list``: the keys that sign governance commands.

``keygen NAME`` writes a new Ed25519 operator key (0600) and prints, on stdout, the one
line the trainer's ``[governance] operators`` (or ``operators_file``) needs to trust it —
so ``driftline operators keygen ana >> operators.toml`` works. The private key stays with
the operator (``[operator] key_file``); the trainer only ever holds public keys.
``list`` shows the operators the configured trainer trusts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from driftline.config import load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``operators`` with its ``keygen`` and ``list`` actions."""
    from driftline.trust.commands import ROLES

    parser = subparsers.add_parser("operators", help="make and list the operator keys that sign commands")
    actions = parser.add_subparsers(dest="operators_action", metavar="ACTION", required=True)
    keygen = actions.add_parser("keygen", help="write a new operator key and print its [governance] operators line")
    keygen.add_argument("name", help="the operator's name: the actor on every audit record it signs")
    keygen.add_argument(
        "--roles",
        default="operator",
        help=f"comma-separated among {', '.join(ROLES)} (approving a major bump needs approver; default: operator)",
    )
    keygen.add_argument("--out", type=Path, help="private key file (default: .driftline/operators/NAME.key)")
    keygen.set_defaults(func=_keygen)
    listing = actions.add_parser("list", help="the operators the trainer trusts ([governance] operators)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=_list)


def _keygen(args: argparse.Namespace) -> int:
    from driftline.errors import DriftlineError
    from driftline.trust.commands import RESERVED_ACTORS, ROLES, operator_line, write_operator_key

    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if not roles or not set(roles) <= set(ROLES):
        raise DriftlineError(f"--roles {args.roles}: want a comma-separated list among {', '.join(ROLES)}")
    if args.name in RESERVED_ACTORS or not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise DriftlineError(f"{args.name!r}: an operator name is letters, digits, -, _ or ., and not trainer or gate")
    out = args.out or Path(".driftline/operators") / f"{args.name}.key"
    key = write_operator_key(out)
    print(
        f'wrote {args.name}\'s private key to {out} (0600): sign with it via [operator] key_file = "{out}"\n'
        f"add this line to the trainer's [governance] operators (or its operators_file):",
        file=sys.stderr,
    )
    print(operator_line(args.name, key.public_key(), roles))
    return 0


def _list(args: argparse.Namespace) -> int:
    from driftline.trust.commands import OperatorKeys
    from driftline.trust.keys import public_hex

    governance = load_settings(args.config).governance
    rows = [
        {"name": op.name, "roles": sorted(op.roles), "key_id": op.key_id, "key": public_hex(op.key)}
        for op in OperatorKeys.load(governance.operators, governance.operators_file)
    ]
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif not rows:
        print("(no operators: every command is refused; add lines from `driftline operators keygen NAME`)")
    else:
        width = max(len(r["name"]) for r in rows)
        print(f"{'NAME'.ljust(width)}  {'ROLES'.ljust(17)}  KEY_ID        PUBLIC KEY")
        for r in rows:
            print(f"{r['name'].ljust(width)}  {','.join(r['roles']).ljust(17)}  {r['key_id']}  {r['key']}")
    return 0
