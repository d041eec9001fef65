"""High availability: several controller processes on one PostgreSQL.

- leases.py: controllers' heartbeats and per-node mastership leases in the
  database, with the OpenFlow role generation ids.
- placement.py: which live controller should master which node (pure).
- mastership.py: one controller's state machine over the leases (what it
  masters now, gained / lost), driven by a tick.
See docs/HA.md.
"""
