"""known_hosts, read once per process while the file is unchanged.

paramiko's `SSHClient.load_host_keys` parses every key of the file and, for each entry,
looks its host names up in the entries read so far: O(K²) in the file's K entries, and it
ran for every connection — a lab's known_hosts holds every device of the fleet, so each
handshake cost more the bigger the fleet (about 65 000 host-name comparisons per
connection at 256 devices). Here the file is parsed once and shared; each connection gets
its own copy of the entries (what AutoAddPolicy adds and saves stays its own, as before),
and a file that changed (inode, size or mtime) is read again.

Copying all K entries into each connection, and paramiko's look-up scanning them, still
cost each handshake O(K): a connection that only checks its server's key (not adding new
ones) gets the entries for its own host name only (from an index made with the parse) and
the hashed ones (`|1|…` names, which only a hash tells apart).
"""

from __future__ import annotations

import threading
from pathlib import Path

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int, int], object, dict[str, list], list]] = {}


def _parsed(path: Path):
    """(entries, {plain host name: entries}, hashed entries) of `path`, shared."""
    import paramiko

    st = path.stat()
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    key = str(path)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1:]
    keys = paramiko.HostKeys()
    keys.load(key)
    index: dict[str, list] = {}
    hashed = []
    for e in keys._entries:
        if any(name.startswith("|1|") for name in e.hostnames):
            hashed.append(e)
        for name in {n for n in e.hostnames if not n.startswith("|1|")}:
            index.setdefault(name, []).append(e)
    with _lock:
        _cache[key] = (stamp, keys, index, hashed)
    return keys, index, hashed


def load_into(client, path: Path, host: str | None = None) -> None:
    """What `client.load_host_keys(path)` does, from the shared parse of `path`; with
    `host` (the name paramiko looks the server up by: `name`, or `[name]:port` off port
    22), only the entries that can match it — for a client that will not save the file
    (AutoAddPolicy saves every entry it holds: give it all, host=None)."""
    from paramiko.hostkeys import HostKeyEntry

    parsed, index, hashed = _parsed(path)
    entries = parsed._entries if host is None else index.get(host, []) + hashed
    mine = client.get_host_keys()
    # paramiko has no public way to add parsed entries without scanning them all again
    mine._entries.extend(HostKeyEntry(list(e.hostnames), e.key) for e in entries)
    client._host_keys_filename = str(path)  # AutoAddPolicy saves new keys here
