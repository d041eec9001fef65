"""A port's API shape is written in one place (ports.port_dict); the SQL that
writes big lists on SQLite (ports._json_sql) must give the same keys in the
same order, and the Python paths (read, create) the same dict."""
from controller.api.resources import ports


def test_the_sql_list_writes_the_keys_of_port_dict_in_order():
    shape = ports.port_dict(*range(19), [], [])
    assert list(ports._json_sql()) == list(shape)


def test_every_argument_lands_in_the_shape():
    args = [f"v{i}" for i in range(19)]
    shape = ports.port_dict(*args, ["ips"], ["tags"])
    assert set(args) <= {v for v in shape.values() if isinstance(v, str)}
    assert shape["fixed_ips"] == ["ips"] and shape["tags"] == ["tags"]
    assert shape["tenant_id"] == shape["project_id"] == "v1"
    assert shape["network:tenant_id"] == shape["network:project_id"] == "v16"
    assert shape["binding:vnic_type"] == "normal"
