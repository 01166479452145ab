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


def test_damaged_files_are_replaced(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path)
    files.key_file.write_text("garbage")
    assert tls.ensure_dev_certs(tmp_path)[1] is True


def test_leaf_from_another_ca_is_replaced(tmp_path: Path) -> None:
    files, _ = tls.ensure_dev_certs(tmp_path / "a")
    other, _ = tls.ensure_dev_certs(tmp_path / "b")
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
