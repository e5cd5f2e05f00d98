/*
 * audit_cli.h -- the audit chain's part of `hortus check` (audit_cli.c, docs/AUDIT.md).
 */
#ifndef HORTUS_AUDIT_CLI_H
#define HORTUS_AUDIT_CLI_H

#include "store/store.h"

/* Walk the chains of s and print the verdict: 0 intact, 1 a PROBLEM (printed). */
int audit_cli_check(store *s);

#endif
