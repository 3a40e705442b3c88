# shellcheck shell=sh
# In the new mail container, on rollback (steps/mail.py): Postfix stops listening and delivers what
# it has (at most 120 s).
postconf -e "master_service_disable = inet" && postfix reload >/dev/null && for _ in $(seq 120); do postqueue -p | grep -q "Mail queue is empty" && exit 0; postqueue -f; sleep 1; done; echo "the new Postfix still holds mail" >&2; exit 1
