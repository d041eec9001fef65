"""One lab hypervisor: a network namespace running its own ovs-vswitchd
(userspace datapath), with its ovsdb-server in the root namespace (private run
dir), reaching the controller through a socat unix->tcp relay (docs/LAB.md
sections 1-2), and set up by the real node-bootstrap."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.lab.proc import kill_pidfile, run, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_BOOTSTRAP = os.path.join(REPO, "node-bootstrap", "node-bootstrap")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# An ovsdb-server remote: what node-bootstrap's set-manager relies on.
MANAGER_OPTIONS = "db:Open_vSwitch,Open_vSwitch,manager_options"
# Its TLS files come from the SSL row (`set-ssl`), as ovs-ctl starts it.
SSL_FROM_DB = ["--private-key=db:Open_vSwitch,SSL,private_key",
               "--certificate=db:Open_vSwitch,SSL,certificate",
               "--ca-cert=db:Open_vSwitch,SSL,ca_cert"]
INNER_OFP_PORT = 6653        # ssl:127.0.0.1:<6653 + i> inside the hypervisor's namespace


# --- one OVS instance: ovsdb-server (root netns) + ovs-vswitchd (in `netns`), all in `rundir` ---

def ovs_env(rundir: str) -> dict:
    return {k: rundir for k in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR")}


def create_ovs(rundir: str, netns: str, *remotes: str) -> None:
    """A new database, its ovsdb-server (with `remotes` besides the unix
    socket), and an ovs-vswitchd in `netns` (docs/LAB.md section 1)."""
    run("ovsdb-tool", "create", f"{rundir}/conf.db", SCHEMA)
    start_ovsdb(rundir, *remotes)
    run("ovs-vsctl", f"--db=unix:{rundir}/db.sock", "--no-wait", "init")
    start_vswitchd(rundir, netns)


def start_ovsdb(rundir: str, *remotes: str) -> None:
    run("ovsdb-server", f"{rundir}/conf.db", f"--remote=punix:{rundir}/db.sock",
        *(f"--remote={r}" for r in remotes), *SSL_FROM_DB,
        f"--pidfile={rundir}/ovsdb-server.pid", "--detach",
        f"--log-file={rundir}/ovsdb-server.log", env=ovs_env(rundir))


def start_vswitchd(rundir: str, netns: str) -> None:
    run("ovs-vswitchd", f"unix:{rundir}/db.sock", f"--pidfile={rundir}/ovs-vswitchd.pid", "--detach",
        f"--log-file={rundir}/ovs-vswitchd.log", netns=netns, env=ovs_env(rundir))


def read_log(rundir: str, daemon: str = "ovs-vswitchd") -> str:
    try:
        with open(f"{rundir}/{daemon}.log", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Hypervisor:
    def __init__(self, lab, index: int):
        self.lab = lab
        self.index = index                       # 1-based
        self.name = f"hv{index}"
        self.netns = f"{lab.prefix}-hv{index}"
        self.hostname = f"{lab.prefix}-hv{index}"
        self.rundir = os.path.join(lab.dir, self.name)
        self.db = f"unix:{self.rundir}/db.sock"
        self.tunnel_ip = f"{lab.underlay_net}.{index}"
        self.ovsdb_tcp_port: int | None = None   # set when the lab exposes OVSDB over TCP
        self.socats: list[subprocess.Popen] = []
        self.inner_relays: list[subprocess.Popen] = []
        self.tls = None                          # tests.lab.pki.CertFiles: ssl: channels
        self.env = ovs_env(self.rundir)

    # --- bring-up --------------------------------------------------------------

    def create(self):
        os.makedirs(self.rundir, exist_ok=True)
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        # No IPv6 chatter from the hypervisor's own interfaces on the wires.
        run("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6", netns=self.netns)
        create_ovs(self.rundir, self.netns, MANAGER_OPTIONS)

    def start_ovsdb(self):
        start_ovsdb(self.rundir, MANAGER_OPTIONS)

    def start_vswitchd(self):
        start_vswitchd(self.rundir, self.netns)

    def stop_ovsdb(self):
        kill_pidfile(f"{self.rundir}/ovsdb-server.pid", "ovsdb-server")

    def stop_vswitchd(self):
        kill_pidfile(f"{self.rundir}/ovs-vswitchd.pid", "ovs-vswitchd")

    def restart_ovsdb(self):
        """Stop and start ovsdb-server on the same database (clients must reconnect)."""
        self.stop_ovsdb()
        self.start_ovsdb()

    def controller_targets(self) -> list[str]:
        if self.tls is not None:       # OVS speaks TLS only to ssl: targets (inner relays)
            return [f"ssl:127.0.0.1:{INNER_OFP_PORT + i}" for i in range(len(self.socats))]
        return [f"unix:{self.rundir}/ctl{i}.sock" for i in range(len(self.socats))]

    def start_relays(self, ofp_ports: list[int]):
        """One socat per controller: unix:$R/ctl<i>.sock -> 127.0.0.1:<ofp port>.
        OVS accepts unix targets only inside its run dir (docs/LAB.md section 2)."""
        self.stop_relays()
        for i, port in enumerate(ofp_ports):
            path = f"{self.rundir}/ctl{i}.sock"
            if os.path.exists(path):
                os.unlink(path)
            p = subprocess.Popen(["socat", f"UNIX-LISTEN:{path},fork,unlink-early",
                                  f"TCP:127.0.0.1:{port},nodelay"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            with open(f"{self.rundir}/socat{i}.pid", "w") as f:
                f.write(str(p.pid))
            self.socats.append(p)
            wait_until(lambda: os.path.exists(path), 5, what=f"socat listening on {path}")
            if self.tls is not None:
                self._start_inner_relay(i, path)

    def _start_inner_relay(self, i: int, path: str):
        """127.0.0.1:<6653 + i> inside the namespace -> the unix relay above (a
        file, so reachable across namespaces): a TCP address for ssl: targets.
        The bytes pass untouched, TLS included."""
        port = INNER_OFP_PORT + i
        p = subprocess.Popen(["ip", "netns", "exec", self.netns, "socat",
                              f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,nodelay",
                              f"UNIX-CONNECT:{path}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        with open(f"{self.rundir}/socat-in{i}.pid", "w") as f:
            f.write(str(p.pid))
        self.inner_relays.append(p)
        wait_until(lambda: f":{port:04X}" in self.exec("cat", "/proc/net/tcp").stdout, 5,
                   what=f"socat listening on 127.0.0.1:{port} in {self.netns}")

    def stop_relays(self):
        for name, procs in (("socat", self.socats), ("socat-in", self.inner_relays)):
            for i, p in enumerate(procs):
                p.kill()
                p.wait()
                try:
                    os.unlink(f"{self.rundir}/{name}{i}.pid")
                except OSError:
                    pass
        self.socats, self.inner_relays = [], []

    def add_underlay_nic(self, name: str, peer_netns: str, peer: str, bridge: str):
        """A veth: `name` in this hypervisor, `peer` enslaved to `bridge` in the wire netns."""
        run("ip", "link", "add", name, "netns", self.netns, "type", "veth",
            "peer", "name", peer, "netns", peer_netns)
        run("ip", "-n", peer_netns, "link", "set", peer, "master", bridge, "up")
        # OVS owns this NIC: the hypervisor kernel must not answer ARP on it
        # for the tunnel IP (it would hand out the veth's MAC, not br-phy's).
        run("ip", "-n", self.netns, "link", "set", name, "arp", "off", "up")

    def create_br_phy(self, nic: str):
        """The tunnel endpoint: a standalone br-phy holding the wire, with the
        tunnel IP on its internal port (docs/LAB.md section 4)."""
        mac = "02:00:00:00:%02x:%02x" % (self.index // 256, self.index % 256)
        self.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy",
                   f"datapath_type={self.lab.datapath_type}", f"other-config:hwaddr={mac}",
                   "--", "add-port", "br-phy", nic)
        run("ip", "-n", self.netns, "addr", "add", f"{self.tunnel_ip}/24", "dev", "br-phy")
        run("ip", "-n", self.netns, "link", "set", "br-phy", "up")

    def warm_tunnel_neighbours(self, others):
        """Ping the other endpoints once so vswitchd's tunnel ARP cache is
        filled: otherwise the first tunnelled packet is dropped while it ARPs."""
        for other in others:
            self.exec("ping", "-c", "1", "-W", "1", other.tunnel_ip, check=False)

    # --- node-bootstrap ----------------------------------------------------------

    def bootstrap_argv(self, *extra: str, undo: bool = False) -> list[str]:
        lab = self.lab
        argv = [sys.executable, NODE_BOOTSTRAP, "--db", self.db, "--hostname", self.hostname]
        if lab.api_url and lab.register:
            argv += ["--api", lab.api_url]
        if undo:
            return argv + ["--undo", *extra]
        argv += ["--datapath-type", lab.datapath_type, "--tunnel-type", lab.tunnel_type,
                 "--tunnel-ip", self.tunnel_ip, "--role", lab.role_of(self)]
        for target in self.controller_targets():
            argv += ["--controller", target]
        if lab.physnets:
            argv += ["--bridge-mappings", ",".join(f"{pn}:{br}" for pn, br in lab.mappings.items())]
            argv += ["--bridge-ports", ",".join(f"{br}:{nic}" for br, nic in lab.nics.items())]
        if self.tls is not None:
            argv += self.tls.flags()
        if self.ovsdb_tcp_port:
            scheme = "pssl" if self.tls is not None else "ptcp"
            argv += ["--ovsdb-listen", f"{scheme}:{self.ovsdb_tcp_port}:127.0.0.1"]
        else:
            argv += ["--ovsdb-listen", self.db]
        return argv + list(extra)

    def bootstrap(self, *extra: str, undo: bool = False, check: bool = True):
        """Run the real node-bootstrap against this hypervisor's OVS."""
        return run(*self.bootstrap_argv(*extra, undo=undo), env=self.env, check=check)

    @property
    def ovsdb_remote(self) -> str:
        """How the controller reaches this node's OVSDB (what bootstrap registers)."""
        if self.ovsdb_tcp_port:
            return f"{'ssl' if self.tls is not None else 'tcp'}:127.0.0.1:{self.ovsdb_tcp_port}"
        return self.db

    # --- inspection ----------------------------------------------------------------

    def vsctl(self, *args: str, check: bool = True) -> str:
        return run("ovs-vsctl", "--timeout=10", f"--db={self.db}", *args, check=check).stdout

    def ofctl(self, command: str, bridge: str, *args: str) -> str:
        return run("ovs-ofctl", "-O", "OpenFlow13", command,
                   f"unix:{self.rundir}/{bridge}.mgmt", *args).stdout

    def dump_flows(self, bridge: str = "br-int") -> str:
        return self.ofctl("dump-flows", bridge)

    def appctl(self, *args: str) -> str:
        return run("ovs-appctl", "-t", "ovs-vswitchd", *args, env=self.env).stdout

    def exec(self, *argv, check: bool = True, timeout: float = 30):
        return run(*argv, netns=self.netns, check=check, timeout=timeout)

    def ofport(self, iface: str) -> int:
        out = self.vsctl("get", "Interface", iface, "ofport").strip()
        return int(out) if out.lstrip("-").isdigit() else -1

    def bridges(self) -> list[str]:
        return self.vsctl("list-br").split()

    def ports(self, bridge: str) -> list[str]:
        return self.vsctl("list-ports", bridge).split()

    def is_connected(self, bridge: str = "br-int") -> bool:
        """Whether vswitchd reports every controller of `bridge` connected
        (lags by seconds, docs/LAB.md section 5: use it to wait, never to time)."""
        refs = self.vsctl("get", "Bridge", bridge, "controller").strip().strip("[]")
        uuids = [u.strip() for u in refs.split(",") if u.strip()]
        return bool(uuids) and all(
            self.vsctl("get", "Controller", u, "is_connected").strip() == "true" for u in uuids)

    def log(self, daemon: str = "ovs-vswitchd") -> str:
        return read_log(self.rundir, daemon)

    def destroy(self):
        self.stop_relays()
        self.stop_vswitchd()
        self.stop_ovsdb()
