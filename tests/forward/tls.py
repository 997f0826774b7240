"""Throwaway certificates for the TLS tests, made with the openssl command.

``make_tls_files(directory)`` creates a test CA, a server certificate for 127.0.0.1
and localhost, a client certificate signed by the same CA, and a second, unrelated
CA with its own client certificate, to play the certificates a broker must reject.
Keys are EC P-256, so generating them takes milliseconds.
"""

import os
import pathlib
import subprocess

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _make_ca(directory, name):
    _openssl(directory, "req", "-x509", *_EC, "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _make_leaf(directory, ca, name, extensions):
    (directory / f"{name}.ext").write_text(extensions + "\n")
    _openssl(directory, "req", *_EC, "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr")
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
             "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2",
             "-extfile", f"{name}.ext", "-out", f"{name}.pem")


def make_leaf(directory, ca, name, extensions):
    """Create certificate ``name`` signed by ``ca`` in ``directory``; return (cert, key)."""
    directory = pathlib.Path(directory)
    _make_leaf(directory, ca, name, extensions)
    os.chmod(directory / f"{name}.key", 0o600)
    return str(directory / f"{name}.pem"), str(directory / f"{name}.key")


def make_tls_files(directory):
    """Create the certificates in ``directory``; return their paths by role."""
    directory.mkdir(parents=True, exist_ok=True)
    _make_ca(directory, "test-ca")
    _make_ca(directory, "rogue-ca")
    _make_leaf(directory, "test-ca", "server",
               "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
    _make_leaf(directory, "test-ca", "client", "extendedKeyUsage=clientAuth")
    _make_leaf(directory, "rogue-ca", "rogue-client", "extendedKeyUsage=clientAuth")
    for key in directory.glob("*.key"):
        os.chmod(key, 0o600)
    return {
        "ca": str(directory / "test-ca.pem"),
        "rogue_ca": str(directory / "rogue-ca.pem"),
        "server_cert": str(directory / "server.pem"),
        "server_key": str(directory / "server.key"),
        "client_cert": str(directory / "client.pem"),
        "client_key": str(directory / "client.key"),
        "rogue_client_cert": str(directory / "rogue-client.pem"),
        "rogue_client_key": str(directory / "rogue-client.key"),
    }
