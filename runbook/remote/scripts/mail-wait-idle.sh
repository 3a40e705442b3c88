# shellcheck shell=sh
# On the old host (steps/mail.py): wait at most 30 s until the old Postfix has no delivery in flight.
for _ in $(seq 60); do postqueue -j 2>/dev/null | grep -q '"queue_name": *"active"' || exit 0; sleep 0.5; done; echo "deliveries still in flight" >&2; exit 1
