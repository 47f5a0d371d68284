"""The cluster's certificate authority and the masters' server certificates (the ``cryptography`` package).

A cluster has one CA; each master's Admin Router serves a certificate the CA signed for the master's IP
address, so a client that trusts the CA file (``curl --cacert``, ``DCOS_SSL_VERIFY``) can check every
master. Private keys are written 0600; certificates are public. Keys are ECDSA P-256: as strong as RSA
3072 for TLS and generated in a millisecond.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dcos_backup.errors import StorageError
from dcos_backup.fsutil import write_private_file

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=825)  # the most that clients accept for a server certificate


def create_ca(cert_path: Path, key_path: Path, name: str) -> None:
    """A self-signed CA named ``name``: its certificate at ``cert_path``, its key (0600) at ``key_path``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    started = datetime.now(UTC) - timedelta(minutes=5)  # tolerate clocks a little behind
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(started)
        .not_valid_after(started + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def issue_server_certificate(ca_cert: Path, ca_key: Path, ip: str, cert_path: Path, key_path: Path) -> None:
    """A server certificate for ``ip`` (its subjectAltName), signed by the CA; its key 0600."""
    issuer_cert = x509.load_pem_x509_certificate(_read(ca_cert))
    issuer_key = serialization.load_pem_private_key(_read(ca_key), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    started = datetime.now(UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(started)
        .not_valid_after(started + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private_file(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
