/*
 * audit_cli.h -- `hortus check --audit DIR` and its debugging companion
 * `--audit-tamper alter|delete|insert ID` (audit_cli.c, docs/AUDIT.md).
 */
#ifndef HORTUS_AUDIT_CLI_H
#define HORTUS_AUDIT_CLI_H

#include "store/store.h"

/* Walk the chains of s and print the verdict: 0 intact, 1 a PROBLEM (printed). */
int audit_cli_check(store *s);

/* Debugging only: alter, delete or insert (a copy after it) the event `id` ("t-seq") of
 * tenant 0 in s, bypassing the chain. 0, 1 (failed), 2 (bad arguments). */
int audit_cli_tamper(store *s, const char *how, const char *id);

#endif
