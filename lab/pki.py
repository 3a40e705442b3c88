"""The lab CA (openssl) and the server certificates it signs: pebble's listener, the mail server."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lab import proc
from lab.topology import Paths


def ensure_ca(paths: Paths) -> Path:
    """Make the lab CA once (.lab/ca/ca.crt, ca.key 0600); return the CA certificate path."""
    ca_key, ca_crt = paths.ca / "ca.key", paths.ca / "ca.crt"
    if ca_crt.exists() and ca_key.exists():
        return ca_crt
    paths.ca.mkdir(parents=True, exist_ok=True)
    proc.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
            "-days",
            "3650",
            "-subj",
            "/CN=FC Lab test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ]
    )
    ca_key.chmod(0o600)
    return ca_crt


def ensure_cert(paths: Paths, out_dir: Path, cn: str, sans: list[str]) -> tuple[Path, Path]:
    """A server cert (cert.pem, key.pem in ``out_dir``) for ``sans`` (``DNS:x`` / ``IP:y``)."""
    cert, key = out_dir / "cert.pem", out_dir / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    ca_crt = ensure_ca(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        ext.write_text(
            f"subjectAltName={','.join(sans)}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        proc.run(
            [
                "openssl",
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(csr),
                "-subj",
                f"/CN={cn}",
            ]
        )
        proc.run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(ca_crt),
                "-CAkey",
                str(paths.ca / "ca.key"),
                "-CAcreateserial",
                "-days",
                "825",
                "-out",
                str(cert),
                "-extfile",
                str(ext),
            ]
        )
    key.chmod(0o600)
    return cert, key
