"""Pure L3 decisions: router subnet overlap, router for a floating IP."""
import pytest

from controller.api import l3_logic as L
from controller.api.l3_errors import BadRequest


def test_router_subnets_may_not_repeat_or_overlap():
    L.check_router_subnets(("s3", "10.0.3.0/24"), [("s1", "10.0.1.0/24"), ("s6", "2001:db8::/64")])
    with pytest.raises(BadRequest, match="already has a port on subnet s1"):
        L.check_router_subnets(("s1", "10.0.1.0/24"), [("s1", "10.0.1.0/24")])
    with pytest.raises(BadRequest, match="overlaps with cidr 10.0.0.0/16 of subnet s1"):
        L.check_router_subnets(("s2", "10.0.1.0/24"), [("s1", "10.0.0.0/16")])


def test_router_for_fip_prefers_the_subnet_gateway():
    c = [L.RouterCandidate("r1", "10.0.0.5", "ext"), L.RouterCandidate("r2", "10.0.0.1", "ext"),
         L.RouterCandidate("r3", "10.0.0.1", "other")]
    assert L.router_for_floatingip(c, "ext", "10.0.0.1") == "r2"
    assert L.router_for_floatingip(c, "ext", "10.0.0.9") == "r1"
    assert L.router_for_floatingip(c, "nowhere", "10.0.0.1") is None


def test_fixed_ip_choice():
    assert L.choose_fixed_ip("p", ["10.0.0.3"], None) == "10.0.0.3"
    assert L.choose_fixed_ip("p", ["10.0.0.3", "10.0.1.3"], "10.0.1.3") == "10.0.1.3"
    with pytest.raises(BadRequest, match="multiple fixed IPv4"):
        L.choose_fixed_ip("p", ["10.0.0.3", "10.0.1.3"], None)
    with pytest.raises(BadRequest, match="no fixed IPv4"):
        L.choose_fixed_ip("p", [], None)
    with pytest.raises(BadRequest, match="does not have fixed ip"):
        L.choose_fixed_ip("p", ["10.0.0.3"], "10.0.0.4")
