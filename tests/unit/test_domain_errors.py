"""Domain code (IPAM, segments) refuses with domain errors, not HTTP ones;
the API answers each as its Neutron error with the same facts."""
from __future__ import annotations

import netaddr
import pytest

from controller import domain_errors, ipam, segments
from controller.api import errors

CONF = segments.SegmentConfig(tenant_types=["vxlan"], flat_networks=["physnet1"],
                              vlan_ranges={"physnet1": [(100, 199)]})


def test_ipam_refuses_with_domain_errors_the_api_answers_as_before():
    net = netaddr.IPNetwork("10.0.0.0/24")
    pools = [{"start": "10.0.0.10", "end": "10.0.0.20"}, {"start": "10.0.0.15", "end": "10.0.0.30"}]
    with pytest.raises(domain_errors.OverlappingAllocationPools) as e:
        ipam.validate_pools(net, pools, None)
    assert not isinstance(e.value, errors.NeutronError)
    answer = errors.from_domain(e.value)
    assert answer.status == 409 and answer.type == "OverlappingAllocationPools"
    assert answer.msg == ("Found overlapping allocation pools: 10.0.0.10-10.0.0.20 "
                          "10.0.0.15-10.0.0.30 for subnet 10.0.0.0/24.")
    with pytest.raises(domain_errors.GatewayConflictWithAllocationPools) as e:
        ipam.validate_pools(net, pools[:1], "10.0.0.12")
    assert errors.from_domain(e.value).status == 409


def test_segments_refuse_with_domain_errors_the_api_answers_as_before():
    with pytest.raises(domain_errors.InvalidSegment) as e:
        segments.validate_provider(CONF, "vlan", "physnet9", None)
    answer = errors.from_domain(e.value)
    assert (answer.status, answer.type) == (400, "InvalidInput")
    assert answer.msg == ("Invalid input for operation: physical_network 'physnet9' unknown "
                          "for VLAN provider network.")
    answer = errors.from_domain(domain_errors.NoSegmentAvailable())
    assert (answer.status, answer.type) == (503, "NoNetworkAvailable")


def test_every_domain_error_has_an_api_answer():
    for cls in domain_errors.DomainError.__subclasses__():
        assert cls in errors._FROM_DOMAIN, cls.__name__
