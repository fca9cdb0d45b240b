"""The registry: version folders, the pointer, previous tracking, rollback target and pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import Store
from models import modeldir
from models.errors import CsbotError, RegistryError
from models.registry import Registry


def fake_version(root: Path, version: str) -> None:
    """A complete model directory (the registry checks files and checksums, not the graph)."""
    staging = root / f".{version}.staging"
    staging.mkdir(parents=True)
    for name in modeldir.REQUIRED_FILES:
        (staging / name).write_text("{}" if name.endswith(".json") else "x")
    modeldir.write_json(staging / modeldir.LABELS_FILE, {"intents": ["a", "b"]})
    modeldir.finalize(staging, root / version, version=version, max_length=16, base_model="tiny", data_hash="h",
                      packages={})


def real_versions(data: Path, model: Path, count: int) -> None:
    for i in range(1, count + 1):
        dest = data / "models" / f"v{i:04d}"
        modeldir.copy_model_dir(model, dest)
        modeldir.update_manifest(dest, version=dest.name)


@pytest.fixture()
def registry(tmp_path: Path):  # noqa: ANN201
    store = Store(tmp_path / "csbot.db")
    yield Registry(tmp_path / "models", store)
    store.close()


def test_versions_pointer_and_rollback_target(registry: Registry) -> None:
    assert registry.versions() == [] and registry.next_version() == "v0001" and registry.active() is None
    for v in ("v0001", "v0002", "v0010"):
        fake_version(registry.root, v)
    (registry.root / ".v0011.staging-123").mkdir()  # never listed
    assert registry.versions() == ["v0001", "v0002", "v0010"] and registry.next_version() == "v0011"
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback_target()
    registry.activate("v0001")
    registry.activate("v0002")
    assert (registry.active(), registry.previous(), registry.rollback_target()) == ("v0002", "v0001", "v0001")
    with pytest.raises(RegistryError, match="does not exist"):
        registry.activate("v0099")
    assert registry.active() == "v0002"


def test_a_deleted_folder_does_not_free_its_version_name(registry: Registry) -> None:
    # Rolled back and deleted by hand: a new candidate named v0002 again would be another model under the name
    # that previous_model, the run records and the version rows still use.
    for v in ("v0001", "v0002"):
        fake_version(registry.root, v)
    registry.activate("v0002")
    registry.activate("v0001")  # a rollback: previous is v0002
    import shutil

    shutil.rmtree(registry.root / "v0002")
    assert registry.versions() == ["v0001"] and registry.next_version() == "v0003"
    assert registry.next_version(["v0007", "not-a-version"]) == "v0008"  # names the caller's records hold


def test_a_corrupt_version_is_refused_and_the_pointer_stays(registry: Registry) -> None:
    fake_version(registry.root, "v0001")
    fake_version(registry.root, "v0002")
    registry.activate("v0001")
    (registry.root / "v0002" / modeldir.ONNX_FILE).write_text("tampered")
    with pytest.raises(CsbotError, match="checksum") as info:
        registry.activate("v0002")
    assert "csbot rollback" in info.value.fix
    assert registry.active() == "v0001"


def test_prune_keeps_the_newest_the_active_and_the_previous(registry: Registry) -> None:
    for i in range(1, 8):
        fake_version(registry.root, f"v{i:04d}")
    registry.activate("v0001")
    registry.activate("v0002")  # previous = v0001
    deleted = registry.prune(keep=3)
    assert deleted == ["v0003", "v0004"]
    assert registry.versions() == ["v0001", "v0002", "v0005", "v0006", "v0007"]
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".trash")]
    assert registry.rollback_target() == "v0001"  # the previous active version is never pruned


def test_cli_models_list_promote_rollback_status(tmp_path: Path, tiny_model: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CSBOT_TIMEZONE", "UTC")
    monkeypatch.chdir(tmp_path)  # no .env here
    real_versions(tmp_path / "data", tiny_model, 2)  # promote and rollback open the graphs they switch to
    runner = CliRunner()
    assert "Error: There is no previous version" in runner.invoke(main, ["rollback"]).output
    result = runner.invoke(main, ["promote", "v0001"])
    assert result.exit_code == 0 and "v0001 is now active" in result.output
    assert "v0002 is now active (was v0001)" in runner.invoke(main, ["promote", "v0002"]).output
    listing = runner.invoke(main, ["models", "list"]).output
    assert listing.index("v0002") < listing.index("v0001") and "retired" in listing and "(previous)" in listing
    assert "v0001 is active again" in runner.invoke(main, ["rollback"]).output
    # A second rollback (two admins fixing one bad model, or a double click) would put v0002 back: refused.
    again = runner.invoke(main, ["rollback"])
    assert again.exit_code == 1 and "v0001 is active because of a rollback from v0002" in again.output
    assert "Fix: if v0002 is what you want, run `csbot promote v0002`" in again.output
    assert "v0002 is now active (was v0001)" in runner.invoke(main, ["promote", "v0002"]).output
    assert "v0001 is active again" in runner.invoke(main, ["rollback"]).output  # a new switch: rollback works again
    missing = runner.invoke(main, ["promote", "v0042"])
    assert missing.exit_code == 1 and "Error: Model version v0042 does not exist" in missing.output
    assert "Fix:" in missing.output
    status = runner.invoke(main, ["status"]).output
    # The same text as `/csbot status` in Slack (bot.admin.render_status).
    assert "*Active model*: v0001" in status and "*Next retrain*: " in status and "*Last retrain*: never" in status
    # The active folder gone (deleted by hand, a failed copy): status says why nothing can serve.
    import shutil

    shutil.rmtree(tmp_path / "data" / "models" / "v0001")
    status = runner.invoke(main, ["status"]).output
    assert "*Active model*: v0001" in status
    assert "*Inference*: none · the active model does not load: Model version v0001 is the active version, but " \
           f"its folder {tmp_path / 'data' / 'models' / 'v0001'} is missing." in status
    assert "none (" not in status  # one plain line, not "CPU (none (...))"


def test_promote_and_rollback_refuse_a_version_whose_graph_does_not_load(tmp_path: Path, tiny_model: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no .env here
    real_versions(tmp_path / "data", tiny_model, 2)
    # Garbage whose checksum the manifest records (a bad copy, a hand edit): the checksums pass, the graph does not.
    broken = tmp_path / "data" / "models" / "v0002"
    (broken / modeldir.ONNX_FILE).write_bytes(b"not a protobuf" * 20)
    manifest = modeldir._load_json(broken, modeldir.MANIFEST_FILE)
    modeldir.update_manifest(broken, files={**manifest["files"],
                                            modeldir.ONNX_FILE: modeldir.sha256_file(broken / modeldir.ONNX_FILE)})
    runner = CliRunner()
    assert runner.invoke(main, ["promote", "v0001"]).exit_code == 0
    refused = runner.invoke(main, ["promote", "v0002"])
    assert refused.exit_code == 1 and "model.onnx could not be loaded by onnxruntime" in refused.output
    assert "Fix:" in refused.output and "Traceback" not in refused.output
    with Store(tmp_path / "data" / "csbot.db") as store:
        assert Registry(tmp_path / "data" / "models", store).active() == "v0001"  # the pointer never moved


def test_a_missing_folder_of_a_known_version_says_the_folder_is_gone(registry: Registry) -> None:
    # It said "does not exist (versions: none yet)" while `models list` showed it active, with a fix that
    # could not help: the pointer is there, the folder is not.
    for version in ("v0001", "v0002"):
        fake_version(registry.root, version)
        registry.activate(version)
    for version, role in (("v0002", "active"), ("v0001", "previous")):
        (registry.root / version).rename(registry.root.parent / f"moved-{version}")
        with pytest.raises(RegistryError) as info:
            registry.path(version)
        assert info.value.what == (f"Model version {version} is the {role} version, but its folder "
                                   f"{registry.root / version} is missing.")
        fix = info.value.fix
        assert "restore" in fix and "CSBOT_DATA_DIR" in fix and str(registry.root) in fix
        assert "`csbot promote VERSION`" in fix and "`csbot train --activate`" in fix
    with pytest.raises(RegistryError) as info:  # a name no pointer holds: still "does not exist"
        registry.path("v0009")
    assert info.value.what == "Model version v0009 does not exist (versions: none yet)."
