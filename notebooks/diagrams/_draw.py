"""Draw the lessons' diagrams as SVG (kept in the repository, shown inline by each lesson's markdown).

Each diagram is the part of the lab a lesson takes apart: boxes (services, topics, buckets), grey arrows for
what flows between them, and one chunk's path drawn over them in orange, numbered in the order it travels.

    python notebooks/diagrams/_draw.py      # rewrite every notebooks/diagrams/NN_*.svg
"""

from __future__ import annotations

from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
W, H = 118, 44  # a box, at its narrowest: a longer label widens it
CHAR_W = 6.4     # of an 11 px sans-serif character, generously: a label must not overflow its box
X_SPREAD = 1.3   # the layouts below are drawn on a grid; spread across, they leave room for the arrows' labels
CHUNK = "#e8710a"
KINDS = {"svc": ("#e8eaf6", "#3949ab"), "data": ("#e0f2f1", "#00796b"), "ext": ("#fff8e1", "#a1887f"),
         "note": ("#fafafa", "#bdbdbd")}

# name -> (title, {node: (label, x, y, kind)}, [grey edges (a, b, label)], [chunk path (a, b, label)])
DIAGRAMS: dict[str, tuple[str, dict, list, list]] = {
    "00_architecture": (
        "The lab: one chunk from the encoder to a player",
        {"enc": ("live encoder\n(ffmpeg)", 20, 40, "ext"), "up": ("VOD upload", 20, 200, "ext"),
         "api": ("API\n(FastAPI)", 200, 200, "svc"), "s3": ("S3\n(SeaweedFS)", 200, 40, "data"),
         "kafka": ("Kafka\nlive-chunks", 380, 40, "data"), "kvod": ("Kafka\nvod-segments", 380, 200, "data"),
         "live": ("Spark\nlive query", 560, 40, "svc"), "vod": ("Spark\nVOD query", 560, 200, "svc"),
         "cat": ("catalog\n(FerretDB)", 740, 120, "data"), "prom": ("Prometheus", 740, 260, "svc"),
         "pl": ("playlists\n(S3 manifests)", 740, 20, "data"), "player": ("player\n(hls.js)", 200, 300, "ext")},
        [("up", "api", "upload"), ("api", "kvod", "segment events"), ("kvod", "vod", ""), ("vod", "cat", ""),
         ("vod", "pl", ""), ("api", "cat", "start/end"), ("live", "prom", "/metrics"), ("vod", "prom", "")],
        [("enc", "s3", "1 segment"), ("s3", "kafka", "2 event"), ("kafka", "live", "3 batch"),
         ("live", "pl", "4 playlist"), ("live", "cat", "5 document"), ("player", "api", "6 signed URL"),
         ("api", "s3", "7 presigned GET")]),
    "01_kafka": (
        "Lesson 01: a keyed event lands on one partition, in order",
        {"prod": ("producer\nkey=stream_id", 20, 120, "ext"), "p0": ("partition 0", 260, 10, "data"),
         "p1": ("partition 1", 260, 70, "data"), "p2": ("partition 2", 260, 130, "data"),
         "p3": ("partition 3 …", 260, 190, "data"), "grp": ("consumer group\n(one reader per partition)", 500, 100,
                                                            "svc"),
         "dlq": ("dead-letter topic", 500, 220, "data"), "hash": ("crc32(key) % 6", 20, 220, "note")},
        [("p0", "grp", ""), ("p1", "grp", ""), ("p3", "grp", ""), ("grp", "dlq", "invalid event")],
        [("prod", "p2", "1 produce"), ("p2", "grp", "2 poll, offset n")]),
    "02_control_plane": (
        "Lesson 02: the API does control, never the bytes of a live chunk",
        {"you": ("your client\n(X-API-Key)", 20, 120, "ext"), "api": ("API", 220, 120, "svc"),
         "cat": ("catalog", 420, 20, "data"), "raw": ("S3 vod-raw", 420, 120, "data"),
         "k": ("Kafka", 420, 220, "data"), "enc": ("live encoder", 220, 260, "ext")},
        [("api", "cat", "stream document"), ("api", "raw", "upload"), ("enc", "k", "chunk events (not via API)")],
        [("you", "api", "1 POST /streams/end"), ("api", "k", "2 end marker, same key")]),
    "03_spark": (
        "Lesson 03: a micro-batch, its checkpoint and an idempotent write",
        {"topic": ("your topic", 20, 120, "data"), "read": ("readStream\n(offsets)", 200, 120, "svc"),
         "ck": ("checkpoint\noffsets/N, commits/N", 200, 240, "data"), "fb": ("foreachBatch\n(batch_id)", 380, 120,
                                                                             "svc"),
         "sink": ("store / catalog\n_id = stream:chunk", 600, 120, "data")},
        [("read", "ck", "plan N"), ("fb", "ck", "commit N")],
        [("topic", "read", "1 chunk event"), ("read", "fb", "2 batch N"), ("fb", "sink", "3 write (replay: same _id)")]),
    "04_vod": (
        "Lesson 04: one uploaded segment through the ABR ladder",
        {"up": ("upload", 20, 120, "ext"), "api": ("API", 170, 120, "svc"), "raw": ("S3 vod-raw", 320, 20, "data"),
         "k": ("Kafka\nvod-segments", 320, 220, "data"), "vod": ("Spark VOD\nffmpeg ladder", 480, 120, "svc"),
         "var": ("S3 vod-variants\n720p/480p/360p", 650, 20, "data"), "pl": ("master +\nmedia playlists", 650, 120,
                                                                               "data"),
         "cat": ("catalog", 650, 220, "data")},
        [("api", "k", "segment events")],
        [("up", "api", "1 POST /vod/upload"), ("api", "raw", "2 segment"), ("raw", "vod", "3 read"),
         ("vod", "var", "4 renditions"), ("vod", "pl", "5 playlists"), ("vod", "cat", "6 checksums")]),
    "05_live": (
        "Lesson 05: a live chunk checked, windowed, and recorded",
        {"enc": ("encoder", 20, 120, "ext"), "s3": ("S3 live-streams", 180, 20, "data"),
         "k": ("Kafka live-chunks", 180, 220, "data"), "live": ("Spark live\nsha256, gap check", 360, 120, "svc"),
         "win": ("live playlist\nlast DVR_WINDOW_SIZE", 540, 40, "data"), "rec": ("recording.m3u8\n(at the end)",
                                                                                  540, 200, "data"),
         "pl": ("player", 720, 40, "ext")},
        [("live", "rec", "end marker")],
        [("enc", "s3", "1 upload"), ("enc", "k", "2 publish"), ("k", "live", "3 batch"), ("s3", "live", "4 re-hash"),
         ("live", "win", "5 append, slide"), ("win", "pl", "6 poll")]),
    "06_trace": (
        "Lesson 06: the six hops of one chunk, each on its own clock reading",
        {"h1": ("1 encoder → S3", 20, 100, "ext"), "h2": ("2 event → Kafka", 160, 100, "data"),
         "h3": ("3 Spark batch\n→ playlist PUT", 300, 100, "svc"), "h4": ("4 PUT → seen\nby a poller", 440, 100,
                                                                          "data"),
         "h5": ("5 signed\nplaylist (API)", 580, 100, "svc"), "h6": ("6 segment\n(presigned GET)", 720, 100, "ext")},
        [],
        [("h1", "h2", ""), ("h2", "h3", ""), ("h3", "h4", ""), ("h4", "h5", ""), ("h5", "h6", "")]),
    "07_observability": (
        "Lesson 07: a chunk becomes a counter, a rate, a chart and an alert",
        {"live": ("Spark live\n/metrics", 20, 40, "svc"), "api": ("API /metrics", 20, 140, "svc"),
         "prod": ("producer /metrics", 20, 240, "svc"), "prom": ("Prometheus\n(scrape 1 s)", 260, 140, "svc"),
         "q": ("PromQL\nsum(rate(…[1m]))", 480, 60, "note"), "al": ("alert rules\nalerts.yml", 480, 220, "data"),
         "ch": ("charts in\nthe lesson", 680, 60, "ext")},
        [("api", "prom", ""), ("prod", "prom", ""), ("prom", "al", "evaluate")],
        [("live", "prom", "1 chunks_processed_total +1"), ("prom", "q", "2 query"), ("q", "ch", "3 draw")]),
    "08_recovery": (
        "Lesson 08: a crash mid-batch, and the batch run again into the same writes",
        {"k": ("Kafka", 20, 120, "data"), "live": ("Spark live\n(killed)", 200, 120, "svc"),
         "ck": ("checkpoint\noffsets N, no commit N", 200, 250, "data"), "pl": ("playlist\n(written)", 420, 40,
                                                                               "data"),
         "cat": ("catalog\ninsert by _id", 620, 250, "data"), "again": ("restarted\nquery", 620, 120, "svc")},
        [("live", "ck", "plan N")],
        [("k", "live", "1 batch N"), ("live", "pl", "2 playlist PUT"), ("ck", "again", "3 replay N"),
         ("again", "cat", "4 same _id: skipped")]),
    "09_read_path": (
        "Lesson 09: signed URLs in front of private buckets",
        {"pl": ("player", 20, 120, "ext"), "edge": ("API / CDN edge\nHMAC(stream:exp)", 220, 120, "svc"),
         "man": ("S3 manifests\n(private)", 440, 30, "data"), "seg": ("S3 segments\n(private)", 440, 220, "data"),
         "sec": ("URL_SIGNING_SECRET", 220, 250, "note")},
        [("sec", "edge", "shared")],
        [("pl", "edge", "1 /play?exp&sig"), ("edge", "man", "2 read playlist"), ("edge", "pl", "3 URIs presigned"),
         ("pl", "seg", "4 GET segment")]),
}


def _width(node: tuple) -> float:
    return max(W, max(len(line) for line in node[0].split("\n")) * CHAR_W + 16)


def _box(node: tuple) -> str:
    label, x, y, kind = node
    fill, stroke, w = *KINDS[kind], _width(node)
    lines = label.split("\n")
    texts = "".join(f'<text x="{x + w / 2}" y="{y + H / 2 + 4 + (i - (len(lines) - 1) / 2) * 13}" '
                    f'text-anchor="middle">{escape(t)}</text>' for i, t in enumerate(lines))
    return f'<rect x="{x}" y="{y}" width="{w}" height="{H}" rx="6" fill="{fill}" stroke="{stroke}"/>{texts}'


def _edge(nodes: dict, a: str, b: str, label: str, chunk: bool, offset: float = 0.0) -> tuple[str, str]:
    """The arrow from a to b and its label (drawn last, over the boxes); `offset` moves both sideways, so
    two arrows between the same boxes, one each way, do not lie on each other."""
    (_, ax, ay, _), (_, bx, by, _) = nodes[a], nodes[b]
    aw, bw = _width(nodes[a]), _width(nodes[b])
    x1, y1, x2, y2 = ax + aw / 2, ay + H / 2, bx + bw / 2, by + H / 2
    # start and end on each box's border, not its centre
    dx, dy = x2 - x1, y2 - y1
    length = (dx * dx + dy * dy) ** 0.5 or 1.0
    nx, ny = -dy / length * offset, dx / length * offset

    def border(w: float) -> float:
        return min((w / 2) / abs(dx) if dx else 1e9, (H / 2) / abs(dy) if dy else 1e9)

    sx, sy = x1 + dx * border(aw) + nx, y1 + dy * border(aw) + ny
    ex, ey = x2 - dx * border(bw) + nx, y2 - dy * border(bw) + ny
    color, width, marker = (CHUNK, 3, "chunk") if chunk else ("#9e9e9e", 1.3, "grey")
    text = (f'<text x="{(sx + ex) / 2:.1f}" y="{(sy + ey) / 2 - 5 + (8 if offset > 0 else 0):.1f}" '
            f'text-anchor="middle" class="{marker} label">{escape(label)}</text>') if label else ""
    return (f'<line x1="{sx:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" stroke="{color}" stroke-width="{width}" '
            f'marker-end="url(#{marker})"/>', text)


def _edges(nodes: dict, edges: list, path: list) -> tuple[str, str, str]:
    """Grey arrows, orange arrows, and all their labels."""
    pairs = {(a, b) for a, b, _ in edges + path}
    drawn = {False: [], True: []}
    for chunk, group in ((False, edges), (True, path)):
        for a, b, label in group:
            offset = 7.0 if (b, a) in pairs else 0.0
            drawn[chunk].append(_edge(nodes, a, b, label, chunk, offset))
    return ("".join(line for line, _ in drawn[False]), "".join(line for line, _ in drawn[True]),
            "".join(text for line, text in drawn[False] + drawn[True]))


def svg(title: str, nodes: dict, edges: list, path: list) -> str:
    nodes = {k: (label, x * X_SPREAD, y, kind) for k, (label, x, y, kind) in nodes.items()}
    width = round(max(n[1] + _width(n) for n in nodes.values()) + 30)
    height = max(y for _, _, y, _ in nodes.values()) + H + 60
    grey, orange, labels = _edges(nodes, edges, path)
    body = grey + "".join(_box(n) for n in nodes.values()) + orange + labels
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="11">'
            f"<title>{escape(title)}</title>"
            '<defs><marker id="grey" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0L10,5L0,10z" fill="#9e9e9e"/></marker>'
            f'<marker id="chunk" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
            f'orient="auto"><path d="M0,0L10,5L0,10z" fill="{CHUNK}"/></marker></defs>'
            f'<style>.chunk{{fill:{CHUNK};font-weight:600}} .grey{{fill:#757575}} '
            '.label{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}</style>'
            f"{body}"
            f'<text x="10" y="{height - 12}" fill="#424242">{escape(title)} · '
            f'<tspan fill="{CHUNK}">orange: one chunk\'s path, in order</tspan></text></svg>\n')


def main() -> None:
    for name, (title, nodes, edges, path) in DIAGRAMS.items():
        (HERE / f"{name}.svg").write_text(svg(title, nodes, edges, path))
        print(f"wrote notebooks/diagrams/{name}.svg")  # noqa: T201


if __name__ == "__main__":
    main()
