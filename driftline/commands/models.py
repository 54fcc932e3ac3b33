"""``driftline models``: look at the registry and steer it.

Reading (``list``, ``show``, ``history``) folds the registry, model-updates and audit
topics; steering (``approve``, ``reject``, ``promote``, ``rollback``, ``register``) writes a
command to ``driftline.control`` — the trainer is the only writer of the registry, so the
command takes effect when the trainer has carried it out (``--wait`` shows the outcome).
Every command is signed with the operator's key (``[operator] key_file``; the trainer
trusts the keys in ``[governance] operators``), and its actor is that key's name.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from driftline.config import load_settings
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from driftline.kafka.clients import ClientConfig
    from driftline.trust.keys import Ed25519PrivateKey

__all__ = ["register"]

_STEER = {
    "approve": "approve_version",
    "reject": "reject_version",
    "promote": "promote_version",
    "rollback": "rollback_model",
    "pause": "pause_model",
    "resume": "resume_model",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, inspect, approve, reject, promote, roll back, register models")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default: config, env, local broker)")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("list", "every version of every (or one) model"),
        ("show", "one version: status, metrics, gate, lineage"),
        ("history", "who did what when, from the audit log"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("model", nargs="?" if name == "list" else None)
        if name == "show":
            p.add_argument("version", nargs="?", help="default: the serving version")
        p.add_argument("--json", action="store_true", help="JSON instead of a table")
        p.set_defaults(func=_read)
    for name in ("approve", "reject", "promote"):
        p = sub.add_parser(name, help=f"{name} a version")
        p.add_argument("model")
        p.add_argument("version")
        _actor_args(p)
    for name, help_text in (
        ("pause", "stop automatic retraining of a model (requests are recorded, not acted on)"),
        ("resume", "start automatic retraining of a paused model again"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("model")
        p.set_defaults(version=None)
        _actor_args(p)
    p = sub.add_parser("rollback", help="serve an earlier version (default: the previous one)")
    p.add_argument("model")
    p.add_argument("--to", dest="version", help="version to restore")
    _actor_args(p)
    p = sub.add_parser("register", help="train and publish a first version from a JSONL file of rows")
    p.add_argument("model")
    p.add_argument(
        "--from-file", required=True, type=Path, help="JSON lines: {features: {...}, label: ..., [ts], [event_id]}"
    )
    p.add_argument("--task", choices=["binary", "multiclass", "regression"])
    _actor_args(p, reason_required=False)


def _actor_args(p: argparse.ArgumentParser, reason_required: bool = True) -> None:
    p.add_argument(
        "--by",
        help="who is acting: must be the operator name of the signing key (default: [operator] name, "
        "else the key file's name)",
    )
    p.add_argument("--key-file", type=Path, help="operator key to sign with (default: [operator] key_file)")
    p.add_argument("--reason", required=reason_required, default="", help="why (kept in the audit log)")
    p.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to SECONDS for the trainer's outcome"
    )
    p.set_defaults(func=_steer)


def _context(args: argparse.Namespace) -> tuple[ClientConfig, Any]:
    from driftline.kafka.topics import TopicNames
    from driftline.runtime import client_config_from

    settings = load_settings(args.config)
    return client_config_from(settings, args.bootstrap_servers, check_topics=()), TopicNames(
        prefix=settings.topics.prefix
    )


def _signer(args: argparse.Namespace) -> tuple[str, Ed25519PrivateKey]:
    """The operator name and key the command is signed with; one clear error when there is none."""
    from driftline.consumers.training.config import OperatorSettings
    from driftline.trust.commands import load_operator_key

    configured = load_settings(args.config).operator
    key_file = str(args.key_file or configured.key_file)
    if not key_file:
        raise DriftlineError(
            "no operator key: set [operator] key_file (DRIFTLINE_OPERATOR_KEY_FILE) or pass --key-file; make one "
            "with `driftline operators keygen NAME` and add the line it prints to the trainer's [governance] operators"
        )
    name = OperatorSettings(key_file, configured.name).actor()
    if args.by and args.by != name:
        raise DriftlineError(
            f"--by {args.by}: the actor is the signing key's operator name ({name!r} for {key_file}); "
            f"drop --by, or set [operator] name / --key-file to {args.by}'s key"
        )
    return name, load_operator_key(key_file)


# -- reading ----------------------------------------------------------------------------
def _read(args: argparse.Namespace) -> int:
    from driftline.consumers.trainer.state_loader import load_state

    bootstrap, names = _context(args)
    state = load_state(bootstrap, names)
    if args.models_command == "list":
        data: Any = _list_rows(state, args.model)
    elif args.models_command == "show":
        data = _show(state, args.model, args.version)
    else:
        data = state.audit.get(args.model, [])
    if args.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.models_command == "list":
        _table(data, ["model_id", "version", "serving", "status", "bump", "created", "gate", "metrics", "live"])
    elif args.models_command == "show":
        _print_show(data)
    else:
        _table([_history_row(e) for e in data], ["at", "type", "version", "actor", "reason"])
    return 0


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _list_rows(state: Any, model: str | None) -> list[dict[str, Any]]:
    from driftline.consumers.registry.versioning import sort_versions

    rows = []
    for model_id in [model] if model else state.models():
        versions = state.versions.get(model_id, {})
        for version in sort_versions(versions):
            v = versions[version]
            rows.append(
                {
                    "model_id": model_id,
                    "version": version,
                    "serving": "*" if state.serving_version(model_id) == version else "",
                    "status": v.status,
                    "bump": v.bump,
                    "created": _when(v.created_at),
                    "gate": "pass" if v.gate.get("passed") else "fail",
                    "metrics": " ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items()) if k != "n"),
                    "live": _live_summary(_live_figures(state.audit.get(model_id, []), version)),
                }
            )
    return rows


def _show(state: Any, model: str, version: str | None) -> dict[str, Any]:
    version = version or state.serving_version(model)
    record = state.version(model, version or "")
    if record is None:
        raise DriftlineError(f"no version {version} of model {model!r}")
    data = record.to_dict()
    data["artifact"] = record.artifact.to_dict(with_inline=False)
    profile = data.pop("reference_profile") or {}
    data["reference_profile"] = {"n_rows": profile.get("n_rows"), "features": sorted(profile.get("features", {}))}
    data["serving"] = state.serving_version(model) == record.version
    data["live"] = _live_figures(state.audit.get(model, []), record.version)
    return data


def _live_summary(live: dict[str, Any]) -> str:
    if "accuracy" not in live:
        return ""
    return f"accuracy={live['accuracy']:.4g} n={int(live.get('n', 0))} {live.get('verdict', 'short')}"


def _live_figures(audit: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """The newest live figures the stream reported for ``version`` (post-deployment check), if any."""
    for event in reversed(audit):
        if event.get("type") in ("version_checked", "version_underperforming") and event.get("version") == version:
            live = dict(event.get("live") or {})
            if event.get("type") == "version_checked":
                live["verdict"] = event.get("verdict")
            return live
    return {}


def _print_show(d: dict[str, Any]) -> None:
    lineage = d["lineage"]
    print(
        f"{d['model_id']} {d['version']}  status={d['status']}  serving={d['serving']}  bump={d['bump']} "
        f"(from {d['parent_version']})"
    )
    print(
        f"created {_when(d['created_at'])} for request {d['request_id']}; status by {d['status_by']}: "
        f"{d['status_reason']}"
    )
    print(
        f"spec: task={d['spec']['task']} model={d['spec']['model']} params={d['spec']['params']} "
        f"features={len(d['spec']['features'])}"
    )
    print("metrics:  " + " ".join(f"{k}={v}" for k, v in sorted(d["metrics"].items())))
    if d["champion_metrics"]:
        print("champion: " + " ".join(f"{k}={v}" for k, v in sorted(d["champion_metrics"].items())))
    trigger = d.get("trigger") or {}
    if trigger:
        start = trigger.get("drift_start")
        print(
            f"asked for by: {trigger.get('rule')} (requests {', '.join(trigger.get('request_ids') or [])}); "
            f"drift started {_when(start) if start else 'unknown'}"
        )
    selection = d.get("selection") or {}
    if selection:
        valid = selection.get("validation") or {}
        print(
            f"chosen: window={selection.get('window')} learner={selection.get('learner')}; validated on "
            f"{valid.get('n')} rows {_when(valid.get('ts_from'))} .. {_when(valid.get('ts_to'))}"
        )
        for t in selection.get("trials") or []:
            figures = " ".join(
                f"{k}={v:.4g}"
                for k, v in sorted((t.get("metrics") or {}).items())
                if isinstance(v, (int, float)) and k != "n"
            )
            print(
                f"  tried {t.get('window')}/{t.get('learner')}: n_train={t.get('n_train')} "
                f"{figures or t.get('skipped', '')}"
            )
    live = d.get("live") or {}
    if live:
        print(
            "live:     "
            + " ".join(f"{k}={v:.4g}" for k, v in sorted(live.items()) if isinstance(v, (int, float)))
            + f"  ({live.get('verdict', 'short')})"
        )
    print(f"gate: {'PASSED' if d['gate']['passed'] else 'FAILED'} — {d['gate']['reason']}")
    for c in d["gate"]["checks"]:
        print(
            f"  {c['kind']:<15} {c['metric']:<10} value={c['value']:.4g} bound={c['bound']:.4g} "
            f"{'ok' if c['passed'] else 'FAIL'}"
        )
    print(
        f"lineage: {lineage['n_rows']} rows of {lineage['topic']} (policy {lineage['policy']}), "
        f"sha256={lineage['sha256']}"
    )
    for r in lineage["ranges"]:
        print(f"  partition {r['partition']}: offsets [{r['start']}, {r['end']})")
    a = d["artifact"]
    print(
        f"artifact: {a['format']} {a['size']} bytes sha256={a['sha256'][:16]}… key={a['key_id']} "
        f"{'inline' if not a['location'] else a['location']}"
    )
    print(f"timings (s): {d.get('durations')}")


def _history_row(e: dict[str, Any]) -> dict[str, Any]:
    reason = e.get("reason") or e.get("detail") or (e.get("gate") or {}).get("reason", "")
    if e.get("type") in ("model_version_promoted", "model_version_rolled_back"):
        reason = f"{e.get('from_version')} -> {e.get('version')}: {reason}"
    return {
        "at": _when(e.get("at")),
        "type": e.get("type"),
        "version": e.get("version", ""),
        "actor": e.get("actor", "trainer" if "request_id" in e else ""),
        "reason": reason,
    }


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(nothing)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


# -- steering ---------------------------------------------------------------------------
def _steer(args: argparse.Namespace) -> int:
    from driftline.schemas.registry import ModelCommand

    actor, key = _signer(args)
    bootstrap, names = _context(args)
    if args.models_command == "register":
        from driftline.consumers.trainer.client import write_training_rows

        ranges = write_training_rows(bootstrap, names.labeled, args.model, _read_jsonl(args.from_file))
        cmd = ModelCommand(
            "register_model",
            args.model,
            actor,
            args.reason or f"register from {args.from_file}",
            training_set={"topic": names.labeled, "ranges": [r.to_dict() for r in ranges]},
            task=args.task,
        )
    else:
        cmd = ModelCommand(_STEER[args.models_command], args.model, actor, args.reason, version=args.version)
        refused = _refusal(bootstrap, names, cmd)
        if refused is not None:
            print(f"not sent: {refused}", file=sys.stderr)
            return 2
    from driftline.consumers.trainer.client import send_command, wait_for_outcome

    send_command(bootstrap, names.control, cmd, key)
    print(f"sent {cmd.type} {cmd.model_id} {cmd.version or ''} (command id {cmd.id})")
    if args.wait > 0:
        outcome = wait_for_outcome(bootstrap, names.audit, cmd.id, args.wait)
        if outcome is None:
            print(f"no outcome within {args.wait} s (is `driftline trainer` running?)")
            return 1
        for event in outcome:
            print(f"{event['type']}: {event.get('version', '')} {event.get('reason') or event.get('detail') or ''}")
        return 1 if any(e["type"] in ("command_refused", "training_skipped") for e in outcome) else 0
    return 0


def _refusal(bootstrap: ClientConfig, names: Any, cmd: Any) -> str | None:
    """Why the trainer would refuse ``cmd`` on the registry as it is now (``None``: it would not).

    The same pure rule the trainer applies (``governance.apply_command``), checked before
    sending, so a typo (an unknown model or version, a rejected version) is not queued on
    the control topic to be refused whenever a trainer next runs.
    """
    from driftline.consumers.registry.governance import apply_command
    from driftline.consumers.trainer.state_loader import load_state

    outputs = apply_command(load_state(bootstrap, names), cmd)
    refused = [o.value for o in outputs if o.value.get("type") == "command_refused"]
    return str(refused[0]["reason"]) if refused else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DriftlineError(f"cannot read {path}: {exc.strerror}") from None
    return [orjson.loads(line) for line in lines if line.strip()]
