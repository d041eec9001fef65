"""docs/DEPLOY.md, followed to the letter on the lab: every block marked
`deploy=<host>` runs, in the guide's order, with bash -e on that host; then
VMs are plugged the way Nova plugs them and get DHCP leases, reach each other
across the compute nodes, reach the outside through SNAT on the gateway node
and fetch their metadata. A guide that no longer deploys a working site fails
here.

Hosts are network namespaces on a Linux bridge (the management network
192.0.2.0/24, the guide's addresses) plus an external wire 203.0.113.0/24
with an upstream router. Each host has its own /etc, /opt, /usr/local and
/var/lib (overlays, so the guide's files land there and nowhere else), its
own host name, and for nodes its own ovsdb-server and ovs-vswitchd (run dir
in OVS_RUNDIR, the way the lab runs OVS).

What the lab does differently from real hosts, and nothing else:
- the userspace datapath (no OVS kernel module here): `--datapath-type
  system` becomes `netdev`, and br-mgmt is created with datapath_type=netdev
  and a MAC of its own (the kernel still sees frames on a netdev bridge's
  NIC; with the NIC's MAC it would answer them too);
- veth NICs: transmit checksum offload off on the controller's eth0
  (docs/LAB.md section 3), ARP off on the nodes' NICs (their addresses live on
  OVS bridges);
- `apt-get install` lines check that the packages are installed;
- `systemctl` is played from the unit files the guide installed:
  `enable --now X` runs X's ExecStart as its User, with StateDirectory
  created, stderr as the "journal" (JOURNAL_STREAM) and NOTIFY_SOCKET, and
  waits for READY=1 (Type=notify); `daemon-reload` does nothing;
- PostgreSQL is a private cluster started in the controller namespace on
  127.0.0.1:5432 (what apt's postgresql service would be), psql finding it
  through PGHOST;
- /opt/quantum-controller is the project's own virtual environment (the
  pip install block is deploy=skip);
- the compute block runs on compute-2 with 192.0.2.12 for 192.0.2.11.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import uuid

import pytest

from tests.e2e.test_metadata import FAKE_NOVA, curl
from tests.e2e.test_reconciler import Api
from tests.lab.external import ExternalHost, whoami_client
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.hypervisor import MANAGER_OPTIONS, SCHEMA, Hypervisor, ovs_env, start_vswitchd
from tests.lab.proc import run, wait_until
from tests.support import guide
from tests.support.controller import free_port
from tests.support.postgres import pg_bin
from tests.support.tools import VENV_BIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUIDE = os.path.join(REPO, "docs", "DEPLOY.md")
OVERLAID = ("etc", "opt", "usr/local", "var/lib")
CONTROLLER_IP = "192.0.2.10"
NODES = {"compute-1": "192.0.2.11", "compute-2": "192.0.2.12", "network-1": "192.0.2.2"}
COMPUTES = ("compute-1", "compute-2")
UPSTREAM = "203.0.113.1"


def lab_substitutions(host: str) -> list[tuple[str, str]]:
    """(guide text, lab text) for `host`; each must occur in the guide."""
    subs = [("--datapath-type system", "--datapath-type netdev"),
            ("add-br br-mgmt ", "add-br br-mgmt -- set bridge br-mgmt datapath_type=netdev "
             f"other-config:hwaddr=02:00:c0:00:02:{int(NODES.get(host, '0.0.0.1').split('.')[-1]):02x} ")]
    if host in COMPUTES:
        subs.append(("192.0.2.11", NODES[host]))
    return subs


class Host:
    """One machine of the guide: a namespace with its own view of the file
    system (overlays) and host name."""

    def __init__(self, lab, name: str, netns: str, env: dict | None = None, path_prefix: str = ""):
        self.lab, self.name, self.netns = lab, name, netns
        self.root = os.path.join(lab.dir, "hosts", name)
        self.env = dict(env or {})
        self.path = path_prefix + "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.services: dict[str, subprocess.Popen] = {}
        for d in OVERLAID:
            for part in ("upper", "work"):
                os.makedirs(os.path.join(self.root, d.replace("/", "-"), part), exist_ok=True)

    def upper(self, path: str) -> str:
        """Where a file the guide wrote under one of the overlaid dirs is."""
        for d in OVERLAID:
            if path.startswith("/" + d + "/"):
                return os.path.join(self.root, d.replace("/", "-"), "upper", path[len(d) + 2:])
        raise ValueError(path)

    def prelude(self) -> str:
        mounts = "".join(
            f"mount -t overlay overlay -o lowerdir=/{d},upperdir={self.root}/{d.replace('/', '-')}/upper,"
            f"workdir={self.root}/{d.replace('/', '-')}/work /{d}\n" for d in OVERLAID)
        return f"set -eo pipefail\nhostname {self.name}\n{mounts}cd {shlex.quote(REPO)}\n"

    def argv(self, script: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "--",
                "bash", "-c", self.prelude() + script]

    def environ(self) -> dict:
        return {"PATH": self.path, "HOME": "/root", "LANG": "C.UTF-8", **self.env}

    def sh(self, script: str, timeout: float = 180) -> subprocess.CompletedProcess:
        r = subprocess.run(self.argv("set -x\n" + script), capture_output=True, text=True,
                           timeout=timeout, env=self.environ())
        if r.returncode != 0:
            raise AssertionError(f"on {self.name}, exit {r.returncode}:\n{script}\n"
                                 f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-5000:]}")
        return r

    # --- what systemd would do with the units the guide installed ------------------------

    def systemctl(self, args: list[str]) -> None:
        if args == ["daemon-reload"]:
            return
        if args[:2] == ["enable", "--now"] and len(args) == 3:
            self.start_service(args[2])
            return
        raise AssertionError(f"the lab does not play `systemctl {' '.join(args)}`")

    def start_service(self, name: str) -> None:
        unit = name if name.endswith(".service") else name + ".service"
        path = self.upper(f"/etc/systemd/system/{unit}")
        assert os.path.exists(path), f"{unit} is not installed on {self.name}"
        with open(path) as f:
            svc = guide.unit_service_section(f.read())
        user, group = svc.get("User", "root"), svc.get("Group", svc.get("User", "root"))
        state = svc.get("StateDirectory")
        prep = f"install -d -o {user} -g {group} /var/lib/{state}\n" if state else ""
        notify_path = os.path.join(self.root, f"{name}.notify")
        journal = os.path.join(self.root, f"{name}.journal")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        os.chmod(notify_path, 0o777)         # the service runs as its User
        notify.settimeout(120)
        log = open(journal, "ab")
        st = os.fstat(log.fileno())
        env = {**self.environ(), "NOTIFY_SOCKET": notify_path,
               "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        script = (prep + f"exec setpriv --reuid={user} --regid={group} --init-groups -- "
                  + svc["ExecStart"] + "\n")
        p = subprocess.Popen(self.argv(script), stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        log.close()
        self.services[name] = p
        try:
            assert svc.get("Type") == "notify"
            msg = notify.recv(4096).decode()
        except (socket.timeout, AssertionError):
            raise AssertionError(f"{name} did not notify READY=1:\n{self.journal(name)[-4000:]}")
        finally:
            notify.close()
        assert msg.startswith("READY=1"), msg
        assert p.poll() is None, self.journal(name)

    def journal(self, name: str) -> str:
        try:
            with open(os.path.join(self.root, f"{name}.journal"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop_services(self) -> None:
        for p in self.services.values():
            if p.poll() is None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait(5)


def make_netns(name: str, ipv6: bool = False) -> None:
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    if not ipv6:
        run("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6", netns=name)


def wire_nic(lab, netns: str, nic: str, peer: str, bridge: str) -> None:
    run("ip", "link", "add", nic, "netns", netns, "type", "veth", "peer", "name", peer,
        "netns", lab.wire_netns)
    run("ip", "-n", lab.wire_netns, "link", "set", peer, "master", bridge, "up")


class Site:
    """The guide's machines, before the guide runs: bare hosts with NICs,
    the Debian packages' daemons running (PostgreSQL, Open vSwitch)."""

    def __init__(self, lab):
        self.lab = lab
        run("ip", "-n", lab.wire_netns, "link", "add", "ext", "type", "bridge")
        run("ip", "-n", lab.wire_netns, "link", "set", "ext", "up")
        self.hosts: dict[str, Host] = {}
        self.nodes: dict[str, Hypervisor] = {}
        self._controller_host()
        for i, name in enumerate(NODES, start=1):
            self._node(i, name)
        self.upstream = ExternalHost(lab, "upstream")
        lab.vms.append(self.upstream)
        self.upstream.create()
        self.upstream.set_ip(UPSTREAM + "/24")
        self.api_relay = None

    def _controller_host(self):
        lab = self.lab
        ns = f"{lab.prefix}-controller"
        make_netns(ns)
        wire_nic(lab, ns, "eth0", "hctl", "underlay")
        run("ip", "-n", ns, "addr", "add", f"{CONTROLLER_IP}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ethtool", "-K", "eth0", "tx", "off", netns=ns)
        # PostgreSQL as Debian's package runs it, on loopback of this host.
        pg = self.pg = os.path.join(lab.dir, "pg")
        os.makedirs(pg)
        run("chown", "postgres", pg)
        os.chmod(pg, 0o700)
        b = pg_bin()
        run("runuser", "-u", "postgres", "--", f"{b}/initdb", "-D", f"{pg}/data", "-A", "trust",
            "-U", "postgres", timeout=120)
        run("runuser", "-u", "postgres", "--", f"{b}/pg_ctl", "-D", f"{pg}/data", "-w", "-l",
            f"{pg}/log", "-o", f"-k {pg} -h 127.0.0.1 -p 5432 -c fsync=off", "start", netns=ns,
            timeout=120)
        host = Host(lab, "controller", ns, env={"PGHOST": pg, "PGPORT": "5432"},
                    path_prefix=VENV_BIN + ":")
        # The pip install block is skipped: this installation is the project's venv.
        os.symlink(os.path.dirname(VENV_BIN), host.upper("/opt/quantum-controller"))
        # Nova's metadata API on this host (a fake answering with X-Instance-ID).
        script = os.path.join(lab.dir, "fake_nova.py")
        with open(script, "w") as f:
            f.write(FAKE_NOVA.replace('("127.0.0.1", port)', f'("{CONTROLLER_IP}", port)'))
        self.nova = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, script, "8775",
                                      os.path.join(lab.dir, "nova.jsonl")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.nova.stdout.readline().strip() == "listening"
        self.hosts["controller"] = host

    def _node(self, index: int, name: str):
        lab = self.lab
        hv = Hypervisor(lab, index)
        hv.netns = f"{lab.prefix}-{name}"
        hv.hostname = name
        lab.hvs.append(hv)                          # stopped and removed by lab.close()
        os.makedirs(hv.rundir)
        make_netns(hv.netns)
        wire_nic(lab, hv.netns, "eth0", f"h{index}m", "underlay")
        run("ip", "-n", hv.netns, "link", "set", "eth0", "arp", "off", "up")
        if name == "network-1":
            wire_nic(lab, hv.netns, "eth1", f"h{index}x", "ext")
            run("ip", "-n", hv.netns, "link", "set", "eth1", "arp", "off", "up")
        # openvswitch-switch's daemons, in this host (OVSDB listens on its address).
        run("ovsdb-tool", "create", f"{hv.rundir}/conf.db", SCHEMA)
        run("ovsdb-server", f"{hv.rundir}/conf.db", f"--remote=punix:{hv.rundir}/db.sock",
            f"--remote={MANAGER_OPTIONS}", f"--pidfile={hv.rundir}/ovsdb-server.pid", "--detach",
            f"--log-file={hv.rundir}/ovsdb-server.log", netns=hv.netns, env=hv.env)
        run("ovs-vsctl", f"--db={hv.db}", "--no-wait", "init")
        start_vswitchd(hv.rundir, hv.netns)
        self.nodes[name] = hv
        self.hosts[name] = Host(lab, name, hv.netns, env=hv.env)

    def follow(self, text: str) -> int:
        """Run the guide; returns how many blocks ran."""
        ran = 0
        for block in guide.blocks(text):
            if block.host == "skip":
                continue
            targets = {"controller": ["controller"], "compute": list(COMPUTES),
                       "gateway": ["network-1"]}[block.host]
            for name in targets:
                host = self.hosts[name]
                for kind, what in block.steps:
                    if kind == "apt":
                        r = run("dpkg-query", "-W", "-f", "${Status}\n", *what, check=False)
                        assert r.stdout.count("ok installed") == len(what), (block.line, r.stdout, r.stderr)
                    elif kind == "systemctl":
                        host.systemctl(what)
                    else:
                        for old, new in lab_substitutions(name):
                            what = what.replace(old, new)
                        try:
                            host.sh(what)
                        except AssertionError as e:
                            raise AssertionError(f"{e}\n{self.diagnostics(name)}") from None
                ran += 1
        return ran

    def diagnostics(self, name: str) -> str:
        """The logs that say why a step failed."""
        out = "--- controller journal (end)\n" + self.hosts["controller"].journal(
            "quantum-controller")[-3000:]
        if name in self.nodes:
            out += f"\n--- {name} ovs-vswitchd.log (end)\n" + self.nodes[name].log()[-3000:]
        return out

    def api(self) -> Api:
        """The API from the test's own namespace: a relay into the controller host."""
        if self.api_relay is None:
            port = free_port()
            ns = self.hosts["controller"].netns
            self.api_relay = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                 f"EXEC:ip netns exec {ns} socat STDIO TCP\\:{CONTROLLER_IP}\\:9696"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.api_url = f"http://127.0.0.1:{port}"
            wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10,
                       what="API relay")
        return Api(self.api_url)

    def close(self):
        if self.api_relay:
            self.api_relay.kill()
            self.api_relay.wait()
        for host in self.hosts.values():
            host.stop_services()
        self.nova.kill()
        self.nova.wait()
        # A clean stop (the lab would SIGKILL it with the namespace's processes).
        run("runuser", "-u", "postgres", "--", f"{pg_bin()}/pg_ctl", "-D", f"{self.pg}/data", "-m",
            "immediate", "stop", check=False, timeout=60)


def test_every_bash_block_says_where_it_runs_and_every_lab_substitution_applies():
    with open(GUIDE) as f:
        text = f.read()
    found = guide.blocks(text)
    assert {b.host for b in found} == {"controller", "compute", "gateway", "skip"}
    for host in ("controller", "compute-1", "network-1"):
        for old, _new in lab_substitutions(host):
            assert old in text, f"the guide no longer contains {old!r}: update the lab's substitutions"


@pytest.fixture
def site(lab_factory):
    lab = lab_factory(0, physnets=())
    s = Site(lab)
    yield s
    s.close()


@pytest.mark.lab
def test_the_deployment_guide_builds_a_working_site(site):
    with open(GUIDE) as f:
        assert site.follow(f.read()) >= 8
    ctl = site.hosts["controller"]
    journal = ctl.journal("quantum-controller")
    assert "<6>INFO controller: quantum-controller ready" in journal, journal[-3000:]
    api = site.api()
    nodes = {n["hostname"]: n for n in api.get("/nodes")["nodes"]}
    assert set(nodes) >= set(NODES), nodes

    # What Nova does when it boots a VM on private: a port, then the VIF.
    private = api.get("/networks?name=private")["networks"][0]
    vms = []
    for i, hv_name in enumerate(COMPUTES):
        port = api.port(private, device_id=str(uuid.uuid4()), device_owner="compute:nova",
                        name=f"vm{i}")
        vm = site.lab.add_vm(site.nodes[hv_name], port, name=f"vm{i}")
        vm.instance = port["device_id"]
        wait_until(lambda: api.get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE", 60,
                   what=f"vm{i}'s port ACTIVE\n{journal_tail(ctl)}")
        lease = wait_until(lambda: vm.dhcp(), 30, what=f"vm{i} DHCP lease")
        assert lease["ip"] == port["fixed_ips"][0]["ip_address"] and lease["router"] == "10.0.0.1"
        vm.ip = lease["ip"]
        vms.append(vm)

    # Across the compute nodes over GRE.
    assert wait_until(lambda: vms[0].ping(vms[1].ip), 30, what="ping between compute nodes")
    # The outside, through router1's SNAT on network-1.
    gw_ip = api.get("/routers?name=router1")["routers"][0]["external_gateway_info"][
        "external_fixed_ips"][0]["ip_address"]
    srv = site.upstream.whoami_server(7000)
    try:
        seen = wait_until(lambda: vms[0].exec(*whoami_client(UPSTREAM, 7000), check=False).stdout.strip(),
                          30, what="TCP to the upstream router")
    finally:
        srv.kill()
        srv.wait()
    assert seen == gw_ip
    # Metadata through the proxy in the controller, as each VM's own instance.
    for vm in vms:
        code, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(curl(vm)), 30,
                                what=f"metadata from {vm.name}")
        assert body == vm.instance


def journal_tail(host) -> str:
    return host.journal("quantum-controller")[-3000:]


def test_guide_steps_keep_heredocs_and_continuations_whole():
    text = ("```bash deploy=controller\napt-get install -y a b\ncat > /x <<'EOF'\n"
            "systemctl is here as text\nEOF\nnode-bootstrap --a \\\n   --b\nsystemctl daemon-reload\n```\n"
            "```\nnot bash\n```\n")
    (b,) = guide.blocks(text)
    assert b.steps == [("apt", ["a", "b"]),
                       ("sh", "cat > /x <<'EOF'\nsystemctl is here as text\nEOF\nnode-bootstrap --a \\\n   --b\n"),
                       ("systemctl", ["daemon-reload"])]
    with pytest.raises(ValueError):
        guide.blocks("```bash\nls\n```\n")


