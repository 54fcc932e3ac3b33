"""``driftline acls apply|show``: grant each driftline principal only what its role needs.

Run with the config of a principal allowed to manage ACLs (on the secured local broker:
``--config .driftline/kafka-secure/clients/admin.toml``). ``apply`` is idempotent: it
creates the missing grants of ``driftline.kafka.acls.grants`` and removes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from driftline.config import load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``acls`` with its ``apply`` and ``show`` actions."""
    parser = subparsers.add_parser("acls", help="grant and list the Kafka ACLs of driftline's principals")
    actions = parser.add_subparsers(dest="acls_action", metavar="ACTION", required=True)
    apply = actions.add_parser("apply", help="create every missing ACL of every role (idempotent)")
    apply.add_argument("--prefix", help="the deployment's topic prefix (default: topics.prefix)")
    apply.add_argument(
        "--principal",
        action="append",
        default=[],
        metavar="ROLE=PRINCIPAL",
        help="a role's principal when it is not User:<role> (repeatable), e.g. subscriber=User:edge",
    )
    apply.add_argument("--dry-run", action="store_true", help="print the grants, change nothing")
    show = actions.add_parser("show", help="print every ALLOW ACL on the cluster, per principal")
    for action in (apply, show):
        action.add_argument("--bootstrap-servers", help="brokers (default: kafka.bootstrap_servers, env, local)")
        action.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from driftline.errors import ConfigError
    from driftline.kafka.acls import ROLES, DeploymentIds, apply_grants, granted, grants
    from driftline.kafka.admin import KafkaAdmin
    from driftline.kafka.topics import TopicNames
    from driftline.runtime import client_config_from

    prefix = getattr(args, "prefix", None)
    overrides = {"topics": {"prefix": prefix}} if prefix is not None else None
    settings = load_settings(getattr(args, "config", None), overrides=overrides)
    if args.acls_action == "show":
        admin = KafkaAdmin(client_config_from(settings, args.bootstrap_servers, start_local=False))
        _print(granted(admin))
        return 0
    principals: dict[str, str] = {}
    for item in args.principal:
        role, _, principal = item.partition("=")
        if role not in ROLES or not principal:
            raise ConfigError(
                "--principal", f"expected ROLE=PRINCIPAL with ROLE one of {', '.join(ROLES)}, got {item!r}"
            )
        principals[role] = principal
    wanted = grants(TopicNames(prefix=settings.topics.prefix), DeploymentIds.of(settings), principals)
    if args.dry_run:
        _print(sorted(wanted))
        return 0
    admin = KafkaAdmin(client_config_from(settings, args.bootstrap_servers, start_local=False))
    created, present = apply_grants(admin, wanted)
    print(f"acls: {created} created, {present} already granted ({len(wanted)} for {len(ROLES)} roles)")
    return 0


def _print(found: list[Any]) -> None:
    if not found:
        print("no ACLs granted")
    for grant in found:
        print(grant.line())
