"""The Topology page's picture: nodes in a row, the tunnels between nodes
that share a GRE/VXLAN network (arcs above), the physical networks as wires
below, and under each node its VMs as dots coloured by network. Plain SVG
built here (no script), every text escaped."""
from __future__ import annotations

from markupsafe import Markup, escape

from controller.model import owners

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]
BOX_W, BOX_H, GAP, TOP = 210, 74, 60, 90
VM_ROW = 24


def network_colors(inv) -> dict[str, str]:
    return {nid: PALETTE[i % len(PALETTE)] for i, nid in enumerate(sorted(inv.networks))}


def svg(inv, connected_dpids: set[int]) -> Markup:
    nodes = list(inv.nodes.values())
    colors = network_colors(inv)
    xs = {n["id"]: 20 + i * (BOX_W + GAP) for i, n in enumerate(nodes)}
    vms = {n["id"]: [p for p in inv.ports_on(n["hostname"])
                     if p["ofport"] and not p["device_owner"].startswith(owners.DHCP)]
           for n in nodes}
    physnets = sorted({pn for n in nodes for pn in n["bridge_mappings"]})
    rows = max([len(v) for v in vms.values()] + [0])
    wires_y = TOP + BOX_H + 30 + rows * VM_ROW + 20
    legend_y = wires_y + len(physnets) * 28 + 20
    width = max(640, 40 + len(nodes) * (BOX_W + GAP))
    height = legend_y + 24 * ((len(inv.networks) + 2) // 3) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="topology">']
    # tunnels: arcs between nodes that have ports of the same tunnelled network
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            shared = [inv.networks[nid]["name"] or nid[:8] for nid in sorted(inv.networks)
                      if inv.networks[nid]["type"] in ("gre", "vxlan")
                      and {a["id"], b["id"]} <= inv.world.nodes_of_network(nid)]
            if not shared:
                continue
            x1, x2 = xs[a["id"]] + BOX_W / 2, xs[b["id"]] + BOX_W / 2
            lift = 30 + 12 * (x2 - x1) / (BOX_W + GAP)
            out.append(f'<path class="tunnel" d="M{x1},{TOP} Q{(x1 + x2) / 2},{TOP - lift * 2} '
                       f'{x2},{TOP}" fill="none" stroke="#555" stroke-dasharray="6 4"/>')
            out.append(f'<text x="{(x1 + x2) / 2}" y="{TOP - lift - 4}" text-anchor="middle" '
                       f'class="small">{escape(a["tunnel_type"])}: {escape(", ".join(shared))}</text>')
    # physical wires
    for k, pn in enumerate(physnets):
        y = wires_y + k * 28
        out.append(f'<line x1="10" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#999" stroke-width="3"/>')
        out.append(f'<text x="12" y="{y - 5}" class="small">{escape(pn)}</text>')
        for n in nodes:
            if pn in n["bridge_mappings"]:
                x = xs[n["id"]] + BOX_W - 20
                out.append(f'<line x1="{x}" y1="{TOP + BOX_H}" x2="{x}" y2="{y}" stroke="#999" '
                           f'stroke-dasharray="2 3"/>')
    for n in nodes:
        x = xs[n["id"]]
        up = all(int(d) in connected_dpids for d in n["bridges"].values()) and n["bridges"]
        out.append(f'<a href="nodes#node-{escape(n["id"])}"><rect x="{x}" y="{TOP}" width="{BOX_W}" '
                   f'height="{BOX_H}" rx="8" fill="#f7f7f7" stroke="{"#2ca02c" if up else "#d62728"}" '
                   f'stroke-width="3"/></a>')
        out.append(f'<text x="{x + 10}" y="{TOP + 22}" class="title">{escape(n["hostname"])}</text>')
        out.append(f'<text x="{x + 10}" y="{TOP + 42}" class="small">{escape(n["role"])} · '
                   f'{escape(n["tunnel_ip"] or "no tunnel IP")}</text>')
        out.append(f'<text x="{x + 10}" y="{TOP + 60}" class="small">'
                   f'{escape(", ".join(sorted(n["bridges"])))}</text>')
        for j, p in enumerate(vms[n["id"]]):
            y = TOP + BOX_H + 24 + j * VM_ROW
            label = f'{p["name"] or p["id"][:8]} {", ".join(p["ips"])}'
            out.append(f'<a href="port/{escape(p["id"])}"><circle cx="{x + 14}" cy="{y}" r="7" '
                       f'fill="{colors.get(p["network_id"], "#000")}"/>'
                       f'<text x="{x + 28}" y="{y + 4}" class="small">{escape(label)}</text></a>')
    for k, nid in enumerate(sorted(inv.networks)):
        net = inv.networks[nid]
        x, y = 20 + (k % 3) * 220, legend_y + (k // 3) * 24
        out.append(f'<a href="network/{escape(nid)}"><rect x="{x}" y="{y - 10}" width="12" height="12" '
                   f'fill="{colors[nid]}"/><text x="{x + 18}" y="{y}" class="small">'
                   f'{escape(net["name"] or nid[:8])} ({escape(net["type"])}'
                   f'{" " + str(net["segmentation_id"]) if net["segmentation_id"] is not None else ""})'
                   f'</text></a>')
    out.append("</svg>")
    return Markup("\n".join(out))
