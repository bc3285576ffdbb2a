"""Certificates for a cluster: one CA, one certificate per party and per client.

Every connection between parties and clients is TLS 1.3 with mutual
authentication against this CA; a party's name (``party-0``, ``client``, ...)
is its certificate's common name and DNS subject-alternative name.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigError

CLIENT_NAME = "client"
DEALER_NAME = "dealer"


def party_name(party: int) -> str:
    return f"party-{party}"


@dataclass(frozen=True)
class Identity:
    """Files that identify one participant: its certificate, private key and the CA."""

    name: str
    cert: Path
    key: Path
    ca: Path

    @classmethod
    def from_dir(cls, directory: str | os.PathLike, name: str) -> Identity:
        d = Path(directory)
        ident = cls(name, d / f"{name}.pem", d / f"{name}.key", d / "ca.pem")
        for path in (ident.cert, ident.key, ident.ca):
            if not path.is_file():
                raise ConfigError(
                    f"missing certificate file {path}; create a certificate set with 'safelight certs {d} --parties N'"
                )
        return ident


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "safelight cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def create_cluster_certs(
    directory: str | os.PathLike,
    parties: int,
    clients: tuple[str, ...] = (CLIENT_NAME,),
    extra_names: tuple[str, ...] = (),
    days: int = 365,
) -> Path:
    """Create a CA and certificates for ``parties`` servers and the given clients.

    Parameters
    ----------
    directory : path
        Created if missing; existing certificate files are refused, not overwritten.
    parties : int
        Number of servers; they are named ``party-0`` .. ``party-{n-1}``.
    clients : tuple of str
        Client names (certificates usable only as TLS clients).
    extra_names : tuple of str
        Further server roles (e.g. ``dealer``) that act as both server and client.
    days : int
        Validity of every certificate.

    Returns
    -------
    pathlib.Path of the directory. ``ca.key`` is written too (mode 0600) so that
    more clients can be added; keep it offline in a real deployment.
    """
    if parties < 1:
        raise ConfigError(f"parties must be at least 1, got {parties}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "ca.pem").exists():
        raise ConfigError(f"{out} already holds a certificate set; choose an empty directory")
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("safelight cluster CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(out / "ca.key", ca_key)
    _write_cert(out / "ca.pem", ca_cert)

    def issue(name: str, usages: list) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(out / f"{name}.key", key)
        _write_cert(out / f"{name}.pem", cert)

    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for party in range(parties):
        issue(party_name(party), both)
    for name in extra_names:
        issue(name, both)
    for name in clients:
        issue(name, [ExtendedKeyUsageOID.CLIENT_AUTH])
    return out
