"""Signed governance commands: every way a command fails to prove its sender, and the roles policy."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from driftline.commands import operators as operators_command
from driftline.consumers.registry.governance import refuse
from driftline.consumers.registry.state import RegistryState
from driftline.errors import DriftlineError
from driftline.schemas.registry import ModelCommand
from driftline.trust.commands import (
    CommandRejected,
    OperatorKeys,
    load_operator_key,
    operator_line,
    permits,
    sign_command,
    verify_command,
)
from driftline.trust.keys import Ed25519PrivateKey, private_key_from_hex, public_hex

ANA = private_key_from_hex("a1" * 32, "ana")
OPS = private_key_from_hex("0b" * 32, "ops")
OPERATORS = OperatorKeys.from_table(
    {
        "ana": {"key": public_hex(ANA.public_key()), "roles": ["approver"]},
        "ops": {"key": public_hex(OPS.public_key()), "roles": ["operator"]},
    },
    "governance.operators",
)
NOW = 1_800_000_000.0


def _cmd(actor: str = "ana", at: float = NOW, command_id: str = "f" * 32) -> dict[str, object]:
    return ModelCommand("approve_version", "churn", actor, "ok", version="2.0.0", id=command_id, at=at).to_dict()


def _reason(doc: dict[str, object], seen: frozenset[str] = frozenset()) -> str:
    with pytest.raises(CommandRejected) as caught:
        verify_command(doc, OPERATORS, NOW, 3600.0, seen)
    return caught.value.reason


def test_a_signed_command_verifies_as_its_key_name():
    signer = verify_command(sign_command(_cmd(), ANA), OPERATORS, NOW + 5, 3600.0, set())
    assert (signer.name, signer.roles) == ("ana", frozenset({"approver"}))


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (_cmd(), "unsigned"),
        (sign_command(_cmd(), Ed25519PrivateKey.generate()), "unknown_key"),
        ({**sign_command(_cmd(), ANA), "version": "1.0.0"}, "bad_signature"),
        ({**sign_command(_cmd(), ANA), "extra": "added after signing"}, "bad_signature"),
        (sign_command(_cmd(actor="ops"), ANA), "actor_mismatch"),
        (sign_command(_cmd(actor="trainer"), ANA), "reserved_actor"),
        (sign_command(_cmd(actor="gate"), ANA), "reserved_actor"),
        (sign_command(_cmd(at=NOW - 3601), ANA), "too_old"),
        (sign_command(_cmd(at=NOW + 120), ANA), "from_the_future"),
        (sign_command(_cmd(command_id="short"), ANA), "malformed"),
    ],
)
def test_every_unproven_command_is_rejected_with_its_reason(doc, reason):
    assert _reason(doc) == reason


def test_a_seen_id_is_a_replay_and_the_rejection_names_the_verified_signer():
    with pytest.raises(CommandRejected) as caught:
        verify_command(sign_command(_cmd(), ANA), OPERATORS, NOW, 3600.0, {"f" * 32})
    assert (caught.value.reason, caught.value.signer) == ("replayed", "ana")


def test_roles_major_approvals_need_an_approver_and_stream_keys_only_sign_stream_records():
    assert permits({"operator"}, "approve_version", "minor") is None
    assert "approver" in str(permits({"operator"}, "approve_version", "major"))
    assert permits({"approver"}, "approve_version", "major") is None
    assert permits({"operator"}, "rollback_model") is None
    assert permits({"stream"}, "promote_version") is not None
    assert permits({"stream"}, "retrain_requested") is None
    assert permits({"operator", "approver"}, "version_checked") is not None


def test_operator_table_refuses_reserved_names_bad_roles_and_bad_keys():
    key = public_hex(ANA.public_key())
    for table, needle in (
        ({"trainer": {"key": key}}, "trainer's own"),
        ({"ana": {"key": key, "roles": ["root"]}}, "roles"),
        ({"ana": {"key": "zz"}}, "not an Ed25519 public key"),
        ({"ana": "just a string"}, "want {"),
    ):
        with pytest.raises(DriftlineError, match=needle):
            OperatorKeys.from_table(table, "governance.operators")


def test_an_unverified_refusal_does_not_use_up_the_id_but_a_verified_one_does():
    cmd = ModelCommand("promote_version", "m", "ana", "x", version="1.0.0", id="a" * 32)
    state = RegistryState()
    state.apply_outputs(refuse(cmd, "not signed", "unsigned", actor=""))
    assert cmd.id not in state.handled
    [out] = refuse(cmd, "old", "too_old", actor="ana")
    assert (out.value["actor"], out.value["claimed_actor"], out.value["code"]) == ("ana", "", "too_old")
    state.apply_outputs([out])
    assert cmd.id in state.handled


def test_keygen_writes_a_private_key_0600_and_prints_the_line_list_shows(tmp_path: Path, capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    operators_command.register(parser.add_subparsers())
    out = tmp_path / "ana.key"
    args = parser.parse_args(["operators", "keygen", "ana", "--roles", "operator,approver", "--out", str(out)])
    assert args.func(args) == 0
    line = capsys.readouterr().out.strip()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert line == operator_line("ana", load_operator_key(out).public_key(), ["operator", "approver"])
    with pytest.raises(DriftlineError, match="exists"):
        args.func(args)
    config = tmp_path / "driftline.toml"
    config.write_text(f'[governance]\noperators_file = "{tmp_path / "ops.toml"}"\n', encoding="utf-8")
    (tmp_path / "ops.toml").write_text(line + "\n", encoding="utf-8")
    args = parser.parse_args(["--config", str(config), "operators", "list", "--json"])
    assert args.func(args) == 0
    assert '"name": "ana"' in capsys.readouterr().out
    bad = parser.parse_args(["operators", "keygen", "trainer", "--out", str(tmp_path / "t.key")])
    with pytest.raises(DriftlineError, match="not trainer or gate"):
        bad.func(bad)


def test_a_run_without_an_operator_key_makes_keys_its_trainer_trusts(tmp_path: Path):
    from driftline.config import load_settings
    from driftline.demo.loop_runner import DEMO_OPERATOR, LoopConfig, demo_operator

    config = LoopConfig("127.0.0.1:1", "r1", tmp_path / "logs", state_dir=tmp_path / "state")
    env = demo_operator(config, load_settings(env={}), {})
    key = load_operator_key(env["DRIFTLINE_OPERATOR_KEY_FILE"])
    trusted = OperatorKeys.load({}, env["DRIFTLINE_GOVERNANCE_OPERATORS_FILE"])
    stream_key = load_operator_key(env["DRIFTLINE_STREAM_CONTROL_KEY_FILE"])
    assert {(op.name, public_hex(op.key), op.roles) for op in trusted} == {
        (DEMO_OPERATOR, public_hex(key.public_key()), frozenset({"operator", "approver"})),
        ("stream", public_hex(stream_key.public_key()), frozenset({"stream"})),
    }
    assert demo_operator(config, load_settings(env={}), {}) == env  # a rerun reuses the key
    assert demo_operator(config, load_settings(env={}), {"DRIFTLINE_OPERATOR_KEY_FILE": "mine.key"}) == {}


def test_the_cli_refuses_to_send_without_an_operator_key_or_with_a_foreign_actor(tmp_path: Path, capsys):
    from driftline.cli import main

    config = tmp_path / "driftline.toml"
    config.write_text("", encoding="utf-8")
    argv = ["--config", str(config), "models", "--bootstrap-servers", "127.0.0.1:1", "approve", "m", "1.0.0"]
    assert main([*argv, "--reason", "x"]) != 0
    assert "[operator] key_file" in capsys.readouterr().err
    key_file = tmp_path / "ana.key"
    key_file.write_text("a1" * 32 + "\n", encoding="utf-8")
    assert main([*argv, "--reason", "x", "--key-file", str(key_file), "--by", "bob"]) != 0
    assert "--by bob: the actor is the signing key's operator name ('ana'" in capsys.readouterr().err
