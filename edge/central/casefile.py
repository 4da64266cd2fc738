"""A case export (ZIP, ``edgecam-case/1``) and its offline check, the one behind ``edgecam clips verify CASE.zip``.

Layout::

    cover.html                   printable cover sheet: case number, notes, every clip's node, camera, local
                                 (zone named) and UTC times, sha256; who exported it, when, from where; how to check
    case.json                    the case and its clips (node, clip, sha256, file names, who added it and when)
    clips/<node>/<clip>.mp4      the clip as the node signed it (from central's evidence store)
    clips/<node>/<clip>.meta.json its META.json (signed record, previous record)
    keys/<node>.pub              the node's public key as registered at central
    custody.json                 the custody-log entries for the case and its clips (hash-chained entries)
    SHA256SUMS                   ``sha256sum -c SHA256SUMS`` after unzipping
    manifest.json                {"format": "edgecam-case/1", "files": {name: sha256}} (every other member)

Why one altered byte anywhere fails: every member but ``manifest.json`` is hashed in it, a member it does
not list fails, and ``manifest.json`` must be byte-for-byte its own canonical form (sorted keys, indent 2),
so it cannot be edited without changing a hash or a name the check then misses. The clips are checked as
``clips verify`` checks one (hash, node signature, chain link) against the key in ``keys/``.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

from ..clips.evidence import Check, _bundle_chain, check_clip, parse_public_key
from ..errors import UserError
from ..timefmt import evidence_time, utc_iso, zone_label
from .custody import CustodyLog, Entry, entry_hash
from .evidence import EvidenceStore

CASE_FORMAT = "edgecam-case/1"
CHUNK = 1 << 20


def _manifest_bytes(files: dict[str, str]) -> bytes:
    return (json.dumps({"format": CASE_FORMAT, "files": files}, indent=2, sort_keys=True) + "\n").encode()


def write_case(out: Path, root: Path, book: Any, log: CustodyLog, name: str, who: str, where: str) -> Path:
    """Write the case ZIP atomically; the export itself is logged first so the ZIP carries that entry."""
    case = book.require(name)
    items = book.items(name)
    if not items:
        raise UserError(f"case {name!r} holds no clips yet (`edgecam central case add {name} --node N --clip ID`)")
    evidence = EvidenceStore.at(root)
    clips = []
    for it in items:
        stored = evidence.get(it.node, it.clip)
        if stored is None or stored.path is None or not evidence.intact(it.sha256) or stored.sha256 != it.sha256:
            raise UserError(f"{it.node}/{it.clip}: the evidence store's copy is missing or damaged; not exported")
        clips.append((it, stored, evidence.meta(it.sha256)))
    now = time.time()
    log.append(who, "export", f"case:{name}", where, f"exported to {out.name} ({len(clips)} clip(s))")
    subjects = {f"case:{name}"} | {f"{it.node}/{it.clip}" for it in items}
    custody = [e.__dict__ for e in log.entries() if e.subject in subjects]
    doc = {"format": CASE_FORMAT, "case": name, "notes": case.notes, "state": case.state,
           "opened": utc_iso(case.created_ts), "opened_by": case.created_by,
           "exported": utc_iso(now), "exported_ts": round(now, 3), "exported_by": who, "exported_from": where,
           "clips": [{"node": it.node, "clip": it.clip, "sha256": it.sha256,
                      "file": f"clips/{it.node}/{it.clip}.mp4", "meta_file": f"clips/{it.node}/{it.clip}.meta.json",
                      "pubkey_file": f"keys/{it.node}.pub", "added": utc_iso(it.added_ts), "added_by": it.added_by,
                      "note": it.note} for it, _s, _m in clips]}
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    stamp = time.gmtime(now)[:6]
    files: dict[str, str] = {}
    try:
        with tmp.open("wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            def put(member: str, data: bytes) -> None:
                zf.writestr(zipfile.ZipInfo(member, stamp), data)
                files[member] = hashlib.sha256(data).hexdigest()

            put("cover.html", cover_html(doc, [m for _i, _s, m in clips], {it.node: s.pubkey for it, s, _m in clips})
                .encode())
            put("case.json", json.dumps(doc, indent=2, sort_keys=True).encode())
            for it, stored, meta in clips:
                h = hashlib.sha256()
                member = f"clips/{it.node}/{it.clip}.mp4"
                assert stored.path is not None  # only clips stored in the evidence store are exported
                with open(stored.path, "rb") as src, zf.open(zipfile.ZipInfo(member, stamp), "w",
                                                             force_zip64=True) as dst:
                    while block := src.read(CHUNK):
                        h.update(block)
                        dst.write(block)
                files[member] = h.hexdigest()
                put(f"clips/{it.node}/{it.clip}.meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())
                if f"keys/{it.node}.pub" not in files:
                    put(f"keys/{it.node}.pub", (stored.pubkey.strip() + "\n").encode())
            put("custody.json", json.dumps(custody, indent=2, sort_keys=True).encode())
            put("SHA256SUMS", "".join(f"{d}  {n}\n" for n, d in files.items()).encode())
            zf.writestr(zipfile.ZipInfo("manifest.json", stamp), _manifest_bytes(files))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def cover_html(doc: dict[str, Any], metas: list[dict[str, Any]], keys: dict[str, str]) -> str:
    """The printable cover sheet (plain HTML, no script, no external resource)."""
    e = html.escape
    rows = []
    for c, meta in zip(doc["clips"], metas, strict=True):
        r = meta.get("record") or {}
        clock = "synchronised" if r.get("time_ok") else "NOT synchronised"
        rows.append(
            f"<tr><td>{e(c['node'])}</td><td>{e(str(r.get('camera', '?')))}</td><td>{e(c['clip'])}</td>"
            f"<td>{e(evidence_time(r.get('start_ts', float('nan'))))}</td>"
            f"<td>{e(evidence_time(r.get('end_ts', float('nan'))))}</td>"
            f"<td>{e(str(r.get('duration')))} s, clock {clock}</td>"
            f"<td>{e(', '.join(r.get('labels') or []) or '-')}</td>"
            f"<td class=h>{e(c['sha256'])}</td><td>{e(str(r.get('seq')))}</td></tr>")
    key_rows = "".join(f"<li>{e(n)}: <code>{e(k)}</code></li>" for n, k in sorted(keys.items()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Case {e(doc['case'])}</title>
<style>body{{font:11pt sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #888;padding:.3em;vertical-align:top;text-align:left}}.h,code{{font:9pt monospace;
word-break:break-all}}@media print{{body{{margin:0}}}}</style></head><body>
<h1>Evidence case {e(doc['case'])}</h1>
<p>Notes: {e(doc['notes'] or '-')}</p>
<p>Opened {e(doc['opened'])} by {e(doc['opened_by'])}. Exported by <b>{e(doc['exported_by'])}</b>
({e(doc['exported_from'])}) at <b>{e(evidence_time(doc['exported_ts']))}</b>.</p>
<p>Times: local time of the exporting machine ({e(zone_label())}), then UTC after "=".
"clock NOT synchronised" means the node's clock was not known to be right when it recorded.</p>
<h2>Clips ({len(rows)})</h2>
<table><tr><th>Node</th><th>Camera</th><th>Clip</th><th>Start</th><th>End</th><th>Duration</th><th>Labels</th>
<th>sha256</th><th>Record seq</th></tr>
{''.join(rows)}</table>
<h2>Node keys (as registered at central)</h2><ul>{key_rows}</ul>
<h2>How to check this case</h2>
<ol><li>Every file is unchanged (any machine with coreutils):
<pre>unzip CASE.zip -d case &amp;&amp; cd case &amp;&amp; sha256sum -c SHA256SUMS</pre></li>
<li>Every clip is signed by its node, the records link, the custody entries are intact (with edgecam):
<pre>edgecam clips verify CASE.zip</pre>
Compare each key above with the node's own (<code>edgecam key show</code> on the node) to check origin.</li></ol>
</body></html>
"""


def is_case(zf: zipfile.ZipFile) -> bool:
    return "case.json" in zf.namelist()


def _member_sha256(zf: zipfile.ZipFile, name: str) -> str:
    h = hashlib.sha256()
    with zf.open(name) as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def check_case(path: Path, pubkey: str | None = None) -> list[Check]:
    """Every member against the manifest, every clip against its node's key, the custody entries' hashes."""
    checks: list[Check] = []
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        raw = zf.read("manifest.json")
        manifest = json.loads(raw)
        files = dict(manifest.get("files") or {})
        if manifest.get("format") != CASE_FORMAT:
            return [Check("manifest", False, f"format {manifest.get('format')!r} is not {CASE_FORMAT}")]
        if raw != _manifest_bytes(files):
            checks.append(Check("manifest", False, "manifest.json was edited (not its canonical form)"))
        for name in sorted(names - set(files) - {"manifest.json"}):
            checks.append(Check("manifest", False, f"{name} is in the ZIP but not in the manifest"))
        for name, digest in sorted(files.items()):
            if name not in names:
                checks.append(Check("manifest", False, f"{name} listed but missing"))
            elif _member_sha256(zf, name) != digest:
                checks.append(Check("manifest", False, f"{name} does not match its sha256 in the manifest"))
        if not any(c.name == "manifest" for c in checks):
            checks.append(Check("manifest", True, f"all {len(files)} files match manifest.json"))
        doc = json.loads(zf.read("case.json"))
        by_node: dict[str, list[dict[str, Any]]] = {}
        for c in doc.get("clips") or []:
            label = f"{c['node']}/{c['clip']}"
            key_text = pubkey or zf.read(c["pubkey_file"]).decode().strip()
            meta = json.loads(zf.read(c["meta_file"]))
            record = meta.get("record") or {}
            for chk in check_clip(zf.read(c["file"]), meta, parse_public_key(key_text)):
                checks.append(Check(chk.name, chk.ok, f"{label}: {chk.detail}"))
            if record.get("clip") != c["clip"] or record.get("node") not in (None, c["node"]) \
                    or record.get("sha256") != c["sha256"]:
                checks.append(Check("record", False, f"{label}: the signed record is not for this clip"))
            by_node.setdefault(c["node"], []).append(record)
        if not doc.get("clips"):
            checks.append(Check("manifest", False, "the case holds no clips"))
        for node, records in sorted(by_node.items()):
            checks += [Check(c.name, c.ok, f"{node}: {c.detail}") for c in _bundle_chain(records)]
        checks += _custody_checks(json.loads(zf.read("custody.json")))
    return checks


def _custody_checks(raw: list[dict[str, Any]]) -> list[Check]:
    try:
        entries = [Entry(**e) for e in raw]
    except TypeError:
        return [Check("custody", False, "custody.json entries do not have the custody log's fields")]
    bad = [f"entry seq {e.seq} was altered" for e in entries if entry_hash(e.body()) != e.hash]
    by_seq = {e.seq: e for e in entries}
    bad += [f"entry seq {e.seq} does not link to entry seq {e.seq - 1}" for e in entries
            if e.seq - 1 in by_seq and by_seq[e.seq - 1].hash != e.prev_hash]
    if bad:
        return [Check("custody", False, b) for b in bad]
    return [Check("custody", True, f"{len(entries)} custody entries intact")]
