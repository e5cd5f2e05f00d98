/*
 * tenant.h -- partner hospitals as partitions of one data directory (docs/TENANTS.md).
 *
 * Every key of the store starts with a tenant number (0 = the default tenant, served at
 * /fhir). A named tenant gets the next number, once and for ever, and is served at
 * /fhir/NAME. The registry of names is the text file DIR/tenants of the data directory:
 *
 *   # hortus tenants: number name (numbers are never reused)
 *   1 north-clinic
 *   2 st-marys
 *
 * It is a file beside the LMDB environment, not an Aux key inside it, so that
 * `hortus tenant add` works while a server holds the directory (the store is one
 * process's at a time, store.h): the command takes DIR/tenants.lock, writes
 * tenants.tmp, fsyncs it and renames it over tenants (then fsyncs DIR), so the file is
 * always whole; a running server sees the new inode at the next request naming a
 * tenant it does not know and reads the file again.
 *
 *   name  := [a-z0-9][a-z0-9-]{0,31}, not a resource type name in any case, not a word
 *            the FHIR base uses ("metadata" ...) or reserves (tenant_name_check).
 */
#ifndef HORTUS_AUTH_TENANT_H
#define HORTUS_AUTH_TENANT_H

#include <stddef.h>
#include <stdint.h>

#define TENANT_NAME_MAX 32 /* bytes of a tenant name */
#define TENANT_MAX                                                                                 \
    255 /* named tenants of a directory (numbers 1 .. 255; the                                     \
           parameter and profile registries keep 256 sets) */
#define TENANT_FILE "tenants"

typedef struct tenant_entry {
    uint32_t num;
    char name[TENANT_NAME_MAX + 1];
} tenant_entry;

/* 1 when the path segment s[0..n) has the shape of a tenant name (lower-case letters,
 * digits, '-', first a letter or digit; any length) and is not "metadata": the router
 * takes such a first segment as a tenant (no resource type begins in lower case). */
int tenant_segment(const char *s, size_t n);

/* 0 when name may name a new tenant, else ERR_INVALID with the reason in msg. */
int tenant_name_check(const char *name, char *msg, size_t cap);

/* Read the registry of directory dir into out[0..TENANT_MAX): 0 and *n (no file: 0
 * tenants), ERR_IO (unreadable: msg) or ERR_INVALID (a damaged line: msg). */
int tenant_load(const char *dir, tenant_entry *out, size_t *n, char *msg, size_t cap);

/* Register name in dir (created if missing): 0 and *num (its new number), ERR_EXISTS
 * (the name is registered: *num its number), ERR_INVALID (bad name), ERR_LIMIT
 * (TENANT_MAX reached), ERR_IO; msg says why. */
int tenant_add(const char *dir, const char *name, uint32_t *num, char *msg, size_t cap);

/* ---- a server's view of the registry (thread-safe) ---------------------------------- */
typedef struct tenant_reg tenant_reg;

/* The registry of dir, read now: 0 and *out, or tenant_load's errors. */
int tenant_reg_open(const char *dir, tenant_reg **out, char *msg, size_t cap);
void tenant_reg_free(tenant_reg *g);

/* The number of tenant name[0..n): 1 and *num, or 0 when it is not registered (the
 * file is read again first when it changed since it was last read). */
int tenant_reg_find(tenant_reg *g, const char *name, size_t n, uint32_t *num);

/* The tenants registered (as last read) into out[0..max): their count. */
size_t tenant_reg_list(tenant_reg *g, tenant_entry *out, size_t max);

/* The data directory of a store location ("lmdb:DIR" or DIR) into out: 0, or
 * ERR_UNSUPPORTED (another backend: no directory). */
int tenant_dir_of(const char *location, char *out, size_t cap);

#endif
