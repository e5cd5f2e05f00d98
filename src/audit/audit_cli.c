/*
 * audit_cli.c -- the audit trail's part of `hortus check`: `--audit DIR` walks every
 * tenant's hash chain (audit_check) and says "audit chain: N events, intact" or names
 * the first PROBLEM (tests/http/test_audit.py breaks the chain with python3-lmdb).
 */
#include <stdio.h>

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
