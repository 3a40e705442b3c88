"""Rollback helper, run by runbook on the new host (python3 -c): every message in the Maildirs
under ROOT that is not in the final-sync manifest (it arrived after the final sync) is sent by SMTP
to the old host for its mailbox, then moved to ROOT/../relayed-back. Prints 'relayed N'."""
import os, smtplib, sys

old, root = sys.argv[1], sys.argv[2]
manifest = os.path.join(root, ".runbook-final-sync-manifest")
if not os.path.exists(manifest):  # no final sync yet: nothing can have arrived here
    print("relayed 0")
    sys.exit(0)
known = set(open(manifest).read().split())
done = os.path.join(os.path.dirname(root.rstrip("/")), "relayed-back")
sent = 0
for domain in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
    for user in sorted(os.listdir(os.path.join(root, domain))):
        md = os.path.join(root, domain, user, "Maildir")
        for sub in ("new", "cur"):
            folder = os.path.join(md, sub)
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                if domain + "/" + user + "/" + name.split(":")[0] in known:
                    continue
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    data = f.read()
                with smtplib.SMTP(old, 25, timeout=30) as smtp:
                    smtp.sendmail("", [user + "@" + domain], data)
                os.makedirs(os.path.join(done, domain, user), exist_ok=True)
                os.replace(path, os.path.join(done, domain, user, name))
                sent += 1
print("relayed", sent)
