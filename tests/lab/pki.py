"""A deployment's certificates for lab tests, made with openssl as an operator
would (README.md "TLS"): one CA, a certificate per node and one for the
controller. Another Pki is "another CA"."""
from __future__ import annotations

import os
from dataclasses import dataclass

from tests.lab.proc import run

DAYS = "2"


@dataclass(frozen=True)
class CertFiles:
    private_key: str
    certificate: str
    ca_cert: str

    def flags(self) -> list[str]:
        """The same flags for quantum-controller and node-bootstrap."""
        return ["--ssl-private-key", self.private_key, "--ssl-certificate", self.certificate,
                "--ssl-ca-cert", self.ca_cert]


class Pki:
    def __init__(self, directory: str, name: str = "deployment"):
        self.dir = directory
        self.name = name
        os.makedirs(directory, exist_ok=True)
        self.ca_key = os.path.join(directory, f"{name}-ca-privkey.pem")
        self.ca_cert = os.path.join(directory, f"{name}-cacert.pem")
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS,
            "-keyout", self.ca_key, "-out", self.ca_cert, "-subj", f"/CN={name} CA")

    def issue(self, cn: str) -> CertFiles:
        """A key and a certificate for `cn` signed by this CA."""
        key = os.path.join(self.dir, f"{cn}-privkey.pem")
        csr = os.path.join(self.dir, f"{cn}-req.pem")
        cert = os.path.join(self.dir, f"{cn}-cert.pem")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/CN={cn}")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
            "-CAcreateserial", "-days", DAYS, "-out", cert)
        return CertFiles(key, cert, self.ca_cert)
