from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest

from webhook_kit import tls
from webhook_kit.errors import CertificateError


def test_certificates_are_made_then_reused(tmp_path: Path) -> None:
    files, made = tls.ensure_dev_certs(tmp_path)
    assert made
    assert files.ca_file == tmp_path / "ca.pem"
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
    again, made_again = tls.ensure_dev_certs(tmp_path)
    assert not made_again and again == files


def test_leaf_covers_loopback_names(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path)
    info = tls.read_cert_info(files.cert_file)
    assert set(info.identities) == {"localhost", "127.0.0.1", "::1"}


def test_renewed_when_fewer_than_30_days_left(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path)
    before = files.cert_file.read_bytes()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=tls.LEAF_LIFETIME_DAYS - 29)
    _, made = tls.ensure_dev_certs(tmp_path, now=soon)
    assert made and files.cert_file.read_bytes() != before


def test_kept_when_31_days_left(tmp_path: Path) -> None:
    tls.ensure_dev_certs(tmp_path)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=tls.LEAF_LIFETIME_DAYS - 31)
    assert tls.ensure_dev_certs(tmp_path, now=later)[1] is False


def test_a_damaged_file_is_named_not_overwritten(tmp_path: Path) -> None:
    # The kit cannot tell a damaged key of its own from someone else's file: it says so.
    files, _ = tls.ensure_dev_certs(tmp_path)
    files.key_file.write_text("garbage")
    with pytest.raises(CertificateError, match="server-key.pem exists and was not made by"):
        tls.ensure_dev_certs(tmp_path)
    assert files.key_file.read_text() == "garbage"


def _foreign_material() -> dict[str, bytes]:
    """Someone else's CA, leaf and private key (say, from mkcert), not the kit's."""
    import trustme

    ca = trustme.CA(organization_name="Someone's own CA")
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    return {
        tls.CA_FILE: ca.cert_pem.bytes(),
        tls.CERT_FILE: leaf.cert_chain_pems[0].bytes(),
        tls.KEY_FILE: leaf.private_key_pem.bytes(),
    }


@pytest.mark.parametrize("name", [tls.CA_FILE, tls.CERT_FILE, tls.KEY_FILE])
def test_someone_elses_file_is_never_overwritten(tmp_path: Path, name: str) -> None:
    foreign = _foreign_material()[name]
    (tmp_path / name).write_bytes(foreign)
    with pytest.raises(CertificateError) as caught:
        tls.ensure_dev_certs(tmp_path)
    assert str(tmp_path / name) in str(caught.value) and "--certs-dir" in str(caught.value)
    assert (tmp_path / name).read_bytes() == foreign


def test_renew_refuses_a_foreign_key_next_to_the_kits_files(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path)
    foreign = _foreign_material()[tls.KEY_FILE]
    files.key_file.write_bytes(foreign)
    with pytest.raises(CertificateError, match="server-key.pem"):
        tls.ensure_dev_certs(tmp_path, force=True, option="--dir")
    assert files.key_file.read_bytes() == foreign


def test_certs_renew_command_names_the_file_and_the_option(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from webhook_kit.cli import main

    material = _foreign_material()
    for name, data in material.items():
        (tmp_path / name).write_bytes(data)
    result = CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--renew"])
    assert result.exit_code == 1, result.output
    assert "ca.pem exists and was not made by webhook-kit" in result.output
    assert "--dir" in result.output and "Traceback" not in result.output
    assert all((tmp_path / n).read_bytes() == d for n, d in material.items())


def test_the_kits_own_files_are_renewed_even_without_the_marker(tmp_path: Path) -> None:
    # Files made before the marker existed are known by their content.
    files, _ = tls.ensure_dev_certs(tmp_path)
    (tmp_path / tls.MARKER_FILE).unlink()
    before = files.key_file.read_bytes()
    _, made = tls.ensure_dev_certs(tmp_path, force=True)
    assert made and files.key_file.read_bytes() != before
    assert (tmp_path / tls.MARKER_FILE).is_file()


def test_leaf_from_another_ca_is_replaced(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path / "a")
    other, _ = tls.ensure_dev_certs(tmp_path / "b")
    assert files.ca_file is not None and other.ca_file is not None
    files.ca_file.write_bytes(other.ca_file.read_bytes())
    assert tls.ensure_dev_certs(tmp_path / "a")[1] is True


def test_client_context_verifies_and_trusts_the_ca(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path)
    ctx = tls.client_context(files.ca_file)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_unreadable_files_raise_certificate_error(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="cannot use certificate"):
        tls.server_context(tls.CertFiles(tmp_path / "no.pem", tmp_path / "no-key.pem", None))
    with pytest.raises(CertificateError, match="cannot read CA file"):
        tls.client_context(tmp_path / "missing-ca.pem")
