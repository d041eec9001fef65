"""The real-OVS lab: hypervisors and VMs as network namespaces (docs/LAB.md).

Each hypervisor is a netns running its own ovs-vswitchd (userspace datapath)
against its own ovsdb-server (root netns, private run dir /tmp/qlab/<prefix>/hvN,
started with --remote=db:Open_vSwitch,Open_vSwitch,manager_options). It is set
up by the REAL node-bootstrap (--datapath-type netdev), and reaches each
controller on 127.0.0.1 through `socat UNIX-LISTEN:$R/ctl<i>.sock,fork
TCP:127.0.0.1:<ofp port>` (OpenFlow target unix:$R/ctl<i>.sock).

The "physical" network is a namespace `<prefix>-wire` of Linux bridges:
- `underlay`: every hypervisor's eth0, which sits on a standalone br-phy whose
  internal port holds the tunnel IP 172.31.0.<index> (GRE/VXLAN endpoints);
  the hypervisor kernel does not ARP on these NICs (arp off), IPv6 is off in
  hypervisor namespaces, and each Lab pings all endpoints once at start so
  vswitchd's tunnel ARP cache is warm (else the first tunnelled packet drops);
- `pn<k>`: every hypervisor's eth<k+1>, attached to br-eth<k+1> by
  node-bootstrap --bridge-ports (the VLAN trunk of physnet k).

VMs are namespaces `<prefix>-<name>` whose eth0 is a veth peered with
`tap<port id[:11]>` in the hypervisor, added to br-int the way Nova does it
(iface-id, attached-mac, iface-status=active), with `ethtool -K eth0 tx off`.

API
---
    from tests.lab import Lab

    with Lab(2, controller) as lab:            # controller: tests.support ControllerProcess
        hv1, hv2 = lab.hvs                     # Hypervisor objects, index 1..N
        vm1 = lab.add_vm(hv1, port)            # port: API dict {"id", "mac_address"}
        vm2 = lab.add_vm(hv2, port_id, mac="fa:16:3e:..", name="web")
        vm1.set_ip("10.0.0.3/24", gateway=None, mtu=1458)
        vm1.ping("10.0.0.4", count=3)          # -> bool (all replies received)
        lease = vm1.dhcp()                     # busybox udhcpc, private hook -> dict or None
                                               # (like any udhcpc hook, a failed attempt
                                               #  flushes eth0's addresses)
        sent, got = lab.tcp_transfer(vm1, vm2, "10.0.0.4", nbytes=10 * 2**20)
        assert sent == got                     # {"bytes": n, "sha256": ...}
        vm1.unplug(); vm1.replug(); vm1.replug(hv2)   # del-port / add-port (or move)

Lab(hypervisors=2, controller=None, *, controllers=[c1, c2], tunnel_type="gre"|"vxlan",
    physnets=("physnet1",), gateways={1}, datapath_type="netdev",
    register=True,        # node-bootstrap --api <first controller's URL>
    ovsdb_tcp=False)      # True: OVSDB via set-manager ptcp:<free port>:127.0.0.1
  .hvs, .vms, .prefix, .dir, .mappings ({"physnet1": "br-eth1"}), .nics ({"br-eth1": "eth1"})
  .add_vm(hv, port, name=None, *, mac=None, iface_id=True, attached_mac=None) -> VM
  .tcp_transfer(src_vm, dst_vm, dst_ip, nbytes, port=5001) -> (sent, received)
  .retarget([controllers])    # re-point the socat relays (controller on a new port)
  .close()                    # also called by `with`; never raises

Hypervisor: .name ("hv1"), .hostname (registered name), .netns, .rundir, .db
  ("unix:..."), .tunnel_ip, .ovsdb_remote, .env (OVS_RUNDIR...)
  .vsctl(*args), .ofctl(cmd, bridge, *args), .dump_flows(bridge), .appctl(*args)
  .exec(*argv) (inside the netns), .ofport(iface), .bridges(), .ports(bridge)
  .bootstrap(*extra, undo=False, check=True) -> CompletedProcess (the real command)
  .restart_ovsdb(), .stop_vswitchd(), .start_vswitchd(), .stop_relays(), .start_relays(ports)
  .log("ovs-vswitchd" | "ovsdb-server")

VM: .name, .netns, .hv, .port_id, .mac, .tap, .plugged
  .exec(*argv, check=True), .popen(*argv, **kw), .set_ip(cidr, gateway, mtu),
  .ping(ip, count=1, timeout=2, size=None, dont_fragment=False, interval=0.2) -> bool,
  .dhcp(timeout=3, tries=3) -> dict | None, .tcp_server(port) -> Popen (listening),
  .plug(), .unplug(), .replug(hv=None), .ofport()

Helpers: tests.lab.proc.wait_until(predicate, timeout, what=...) polls (never a
timing assertion); tests.lab.fixtures provides pytest fixtures `lab_factory`
(build labs that are closed at teardown) - import them into a test module.

Cleanup: close() kills daemons by pidfile and deletes the namespaces and
/tmp/qlab/<prefix>; every new Lab first sweeps labs whose owner pid is dead.
Mark tests that use it `@pytest.mark.lab` (root, namespaces, real OVS).
"""
from tests.lab.hypervisor import Hypervisor
from tests.lab.lab import Lab
from tests.lab.proc import wait_until
from tests.lab.vm import VM

__all__ = ["Lab", "Hypervisor", "VM", "wait_until"]
