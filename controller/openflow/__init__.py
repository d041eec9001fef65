"""OpenFlow 1.3 codec: Flow / Meter (controller/flows/flow.py) <-> messages.

  oxm.py            match fields (OXM TLVs) and their order on the wire
  wire.py           flow_mods, bundles, packet-outs as bytes; flow stats and
                    packet-ins read with struct (the fast path the apps use)
  reference.py      the same through os-ken's message objects: the reference
                    wire.py is tested against, and its fallback
  osken_patches.py  every run-time change to os-ken, with the versions checked
"""
