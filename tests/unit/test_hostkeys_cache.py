"""known_hosts is parsed once per process while unchanged (it was per connection, O(K²))."""

from __future__ import annotations

import os

import paramiko

from edgeq.targets import hostkeys


def _file(tmp_path, hosts: int):
    key = paramiko.RSAKey.generate(1024)
    path = tmp_path / "known_hosts"
    path.write_text(
        "".join(
            f"[127.0.0.1]:{20000 + i} {key.get_name()} {key.get_base64()}\n" for i in range(hosts)
        )
    )
    return path, key


def test_the_parse_is_shared_until_the_file_changes(tmp_path, monkeypatch):
    path, key = _file(tmp_path, 50)
    loads = []
    real = paramiko.HostKeys.load
    monkeypatch.setattr(paramiko.HostKeys, "load", lambda self, f: loads.append(f) or real(self, f))
    clients = [paramiko.SSHClient() for _ in range(3)]
    for c in clients:
        hostkeys.load_into(c, path)
    assert len(loads) == 1
    for c in clients:  # each connection sees every entry, as with load_host_keys
        assert c.get_host_keys().lookup("[127.0.0.1]:20049")[key.get_name()] == key
        assert c._host_keys_filename == str(path)
    # what one connection adds (AutoAddPolicy) is not seen by the others
    clients[0].get_host_keys().add("[127.0.0.1]:1", key.get_name(), key)
    assert clients[1].get_host_keys().lookup("[127.0.0.1]:1") is None
    with open(path, "a") as fh:  # changed: read again
        fh.write(f"[127.0.0.1]:2 {key.get_name()} {key.get_base64()}\n")
    os.utime(path, ns=(0, 1))
    c = paramiko.SSHClient()
    hostkeys.load_into(c, path)
    assert len(loads) == 2 and c.get_host_keys().lookup("[127.0.0.1]:2") is not None
