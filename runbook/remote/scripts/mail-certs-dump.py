"""Dump certificates from Traefik's acme.json like traefik-certs-dumper (file --version v2
--domain-subdir --crt-name=fullchain --key-name=privkey --watch): DEST/<domain>/fullchain.crt and
privkey.key, rewritten atomically only when they change. Written by runbook."""
import base64, json, os, sys, time

source, dest = sys.argv[1], sys.argv[2]


def write(path, data, mode):
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def dump():
    try:
        with open(source) as f:
            store = json.load(f)
    except (OSError, ValueError):
        return
    for resolver in store.values():
        for cert in (resolver or {}).get("Certificates") or []:
            name = cert["domain"]["main"]
            folder = os.path.join(dest, name)
            os.makedirs(folder, exist_ok=True)
            changed = write(os.path.join(folder, "privkey.key"), base64.b64decode(cert["key"]), 0o600)
            changed |= write(os.path.join(folder, "fullchain.crt"), base64.b64decode(cert["certificate"]), 0o644)
            if changed:
                print("dumped", name, flush=True)


while True:
    dump()
    time.sleep(2)
