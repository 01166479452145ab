"""An installed (non-editable) wheel finds its schemas."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

# Builds the wheel and installs it into a fresh venv.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("webhook_kit-*.whl")
    return built


def test_wheel_contains_the_schemas_and_no_key_material(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for schema in ("notification", "settings", "event", "error"):
        assert f"webhook_kit/contract/schemas/{schema}.json" in names
    assert "webhook_kit/py.typed" in names
    for asset in ("index.html", "inspector.js", "inspector.css"):
        assert f"webhook_kit/endpoint/inspector/{asset}" in names
    assert "webhook_kit/provider/openapi.json" in names
    assert not [n for n in names if n.endswith((".pem", ".key"))]


def test_fresh_venv_with_the_wheel_finds_the_schemas(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The dependencies come from this environment through a path entry; .pth files there (such
    # as the editable install's) are not processed, so webhook_kit can only come from the wheel.
    target_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (target_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = (
        "import json, webhook_kit, webhook_kit.contract.schema as s;"
        "print(json.dumps({'file': webhook_kit.__file__, 'title': s.load('notification')['title'],"
        " 'valid': s.notification_validator().is_valid({})}))"
    )
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    facts = json.loads(result.stdout)
    assert facts["file"].startswith(str(env_dir))
    assert facts["title"] == "Validation status notification"
    assert facts["valid"] is False
    listed = subprocess.run(
        [str(env_dir / "bin" / "webhook-kit"), "schemas", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads((tmp_path / "out" / "event.json").read_text())["title"].startswith(
        "Status-change"
    )
