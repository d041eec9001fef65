"""TLS for the controller's channels to the nodes ([ssl] in the configuration).

One key, certificate and CA serve both directions: the controller is the TLS
server of the switches' OpenFlow connections (each switch must present a
certificate the deployment's CA signed) and the TLS client of the nodes'
OVSDB servers (ssl: addresses). README.md "TLS" says how to make them.
"""
from __future__ import annotations

import errno
import ssl
from dataclasses import dataclass

import ovs.socket_util
import ovs.stream

from controller.config import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    private_key: str
    certificate: str
    ca_cert: str


def files_from(cfg) -> TlsFiles | None:
    """The [ssl] files, None when TLS is off; all three or none."""
    files = TlsFiles(cfg.get("ssl.private_key"), cfg.get("ssl.certificate"), cfg.get("ssl.ca_cert"))
    given = [bool(f) for f in (files.private_key, files.certificate, files.ca_cert)]
    if not any(given):
        return None
    if not all(given):
        raise ConfigError("[ssl] private_key, certificate and ca_cert go together: "
                          "set all three or none")
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """For the OpenFlow listener: TLS 1.2 or later, a client certificate from our CA required.
    Raises ConfigError when a file cannot be read or the key does not fit the certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_RENEGOTIATION     # only the handshake may read under a write
    try:
        ctx.load_cert_chain(files.certificate, files.private_key)
        ctx.load_verify_locations(files.ca_cert)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"[ssl]: cannot use {files.certificate} / {files.private_key} / "
                          f"{files.ca_cert}: {e}") from None
    return ctx


# --- OVSDB: the ovs library's ssl: stream, telling why a handshake failed ---------------

# remote ("ssl:192.0.2.11:6640") -> words for the last TLS failure on it; read
# (and cleared) by the OVSDB monitor when the library reports the failure as a
# bare errno (it maps every TLS error to EPROTO or EPERM).
last_errors: dict[str, str] = {}


class ReportingSSLStream(ovs.stream.SSLStream):
    """The ovs library's SSLStream, remembering each TLS failure in words."""

    def connect(self):
        retval = ovs.stream.Stream.connect(self)       # the TCP part, as SSLStream does
        if retval:
            return retval
        try:
            self.socket.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return errno.EAGAIN
        except ssl.SSLError as e:
            return self._failed(e)
        except OSError as e:
            return ovs.socket_util.get_exception_errno(e)
        return 0

    def recv(self, n):
        try:
            return super()._recv(n)
        except ssl.SSLWantReadError:
            return (errno.EAGAIN, "")
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return (0, "")
        except ssl.SSLSyscallError as e:
            return (ovs.socket_util.get_exception_errno(e), "")
        except ssl.SSLError as e:             # e.g. the node refused our certificate (TLS 1.3)
            return (self._failed(e), "")
        except OSError as e:
            return (ovs.socket_util.get_exception_errno(e), "")

    def _failed(self, exc: ssl.SSLError) -> int:
        from controller.channels import tls_detail
        last_errors[self.name] = tls_detail(exc, "node")
        return errno.EPROTO


def configure_ovsdb_client(files: TlsFiles | None) -> None:
    """Give the ovs library our key, certificate and CA for ssl: remotes (process-wide)."""
    ovs.stream.Stream.register_method("ssl", ReportingSSLStream)
    if files is None:
        return
    ovs.stream.Stream.ssl_set_private_key_file(files.private_key)
    ovs.stream.Stream.ssl_set_certificate_file(files.certificate)
    ovs.stream.Stream.ssl_set_ca_cert_file(files.ca_cert)
