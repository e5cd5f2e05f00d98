/*
 * audit_cli.c -- the audit trail's part of `hortus check`: `--audit DIR` walks every
 * tenant's hash chain (audit_check) and says "audit chain: N events, intact" or names
 * the first PROBLEM; and `--audit-tamper`, a debugging aid for the tests of that walk
 * (docs/AUDIT.md): it alters, removes or inserts one event of a stopped server's data
 * directory through the store, as an attacker with write access to the files could.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "audit/audit_cli.h"
#include "base/err.h"
#include "store/store.h"

int audit_cli_check(store *s)
{
    char msg[600];
    uint64_t n = 0;
    int rc = audit_check(s, &n, msg, sizeof msg);
    if (rc == ERR_INTERNAL) {
        printf("PROBLEM: %s\n", msg);
        return 1;
    }
    if (rc) {
        printf("PROBLEM: the audit trail cannot be read: %s\n", err_str(rc));
        return 1;
    }
    printf("audit chain: %llu events, intact\n", (unsigned long long)n);
    return 0;
}

int audit_cli_tamper(store *s, const char *how, const char *id)
{
    uint64_t t;
    uint32_t seq;
    if (audit_id_parse(id, strlen(id), &t, &seq)) {
        fprintf(stderr, "hortus check --audit-tamper: '%s' is not an AuditEvent id (t-seq)\n",
                id);
        return 2;
    }
    uint8_t k[AUDIT_KEY_LEN], k2[AUDIT_KEY_LEN];
    audit_key(k, 0, t, seq);
    store_reader *r;
    const void *v;
    size_t vn;
    static char copy[1 << 16];
    int rc = store_read_begin(s, &r);
    if (!rc)
        rc = store_get(r, STORE_DB_AUDIT, k, sizeof k, &v, &vn);
    if (!rc && vn > sizeof copy)
        rc = ERR_TOOBIG;
    if (!rc)
        memcpy(copy, v, vn);
    store_read_end(r);
    if (rc) {
        fprintf(stderr, "hortus check --audit-tamper: AuditEvent %s: %s\n", id, err_str(rc));
        return 1;
    }
    store_extra x = {.db = STORE_DB_AUDIT, .key = k, .key_len = sizeof k};
    if (!strcmp(how, "alter")) {
        /* change one character of its outcomeDesc or of anything after the link */
        char *p = strstr(copy, "\"outcomeDesc\":\"");
        if (!p)
            p = copy + vn - 3;
        else
            p += 15;
        *p = *p == 'X' ? 'Y' : 'X';
        x.val = copy;
        x.val_len = vn;
    } else if (!strcmp(how, "delete")) {
        x.del = 1;
    } else if (!strcmp(how, "insert")) {
        /* a copy of it just after it, as if it had been recorded twice */
        audit_key(k2, 0, t, seq + 1000000);
        x.key = k2;
        x.val = copy;
        x.val_len = vn;
    } else {
        fprintf(stderr, "hortus check --audit-tamper: alter, delete or insert, not '%s'\n",
                how);
        return 2;
    }
    store_req req = {.extras = &x, .nextra = 1};
    rc = store_write(s, &req, NULL);
    if (rc) {
        fprintf(stderr, "hortus check --audit-tamper: %s\n", err_str(rc));
        return 1;
    }
    printf("tampered: %s AuditEvent %s\n", how, id);
    return 0;
}
