/*
 * tenant.c -- the registry of named tenants (DIR/tenants, tenant.h) and the
 * `hortus tenant add|list` commands.
 *
 * The file is small (at most TENANT_MAX lines) and read whole. Writers serialise on an
 * flock of DIR/tenants.lock and replace the file by rename, so a reader (a running
 * server) sees the old file or the new one, never half of one. A server notices a new
 * file by its inode and modification time (tenant_reg_find: only when a name is not
 * found, so known tenants cost no system call).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/tenant.h"
#include "base/err.h"
#include "cli.h"
#include "fhir/model.h"
#include "store/store.h"

/* Words a tenant may not be called: those the FHIR base answers itself, and those kept
 * for routes and roles to come, so a later route never meets a tenant of its name. */
static const char *const reserved[] = {
    "metadata", "auth",      "fhir",    "default", "admin",      "api",    "oauth",   "oauth2",
    "token",    "authorize", "healthz", "metrics", "well-known", "static", "console", "tenant",
    "tenants",  "system",    "bulk",    "export",  "import",     NULL,
};

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int tenant_segment(const char *s, size_t n)
{
    if (n == 0 || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i]))
            return 0;
    return !(n == 8 && !memcmp(s, "metadata", 8));
}

int tenant_name_check(const char *name, char *msg, size_t cap)
{
    size_t n = strlen(name);
    if (n == 0 || n > TENANT_NAME_MAX) {
        snprintf(msg, cap, "a tenant name has 1 to %d characters ('%.40s' has %zu)",
                 TENANT_NAME_MAX, name, n);
        return ERR_INVALID;
    }
    for (size_t i = 0; reserved[i]; i++)
        if (!strcmp(name, reserved[i])) {
            snprintf(msg, cap, "tenant name '%s' is reserved", name);
            return ERR_INVALID;
        }
    if (!tenant_segment(name, n) || name[n - 1] == '-') {
        snprintf(msg, cap,
                 "tenant name '%.40s': only a-z, 0-9 and '-' (not first or last) are allowed",
                 name);
        return ERR_INVALID;
    }
    const fhir_type *const *types;
    size_t nt = fhir_resource_types(&types);
    for (size_t i = 0; i < nt; i++)
        if (!strcasecmp(types[i]->name, name)) {
            snprintf(msg, cap, "tenant name '%s' is the name of the resource type %s", name,
                     types[i]->name);
            return ERR_INVALID;
        }
    return 0;
}

static int path_in(char *out, size_t cap, const char *dir, const char *file)
{
    return snprintf(out, cap, "%s/%s", dir, file) < (int)cap ? 0 : ERR_INVALID;
}

/* Parse the text of a registry file. */
static int parse(FILE *f, tenant_entry *out, size_t *n, char *msg, size_t cap)
{
    char line[256];
    unsigned lineno = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = 0;
        else if (!feof(f)) {
            snprintf(msg, cap, "line %u is too long", lineno);
            return ERR_INVALID;
        }
        if (!len || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        char *end = NULL;
        unsigned long num = sp ? strtoul(line, &end, 10) : 0;
        const char *name = sp ? sp + 1 : "";
        size_t nl = strlen(name);
        if (!sp || end != sp || num < 1 || num > TENANT_MAX || !nl || nl > TENANT_NAME_MAX ||
            !tenant_segment(name, nl) || *n == TENANT_MAX) {
            snprintf(msg, cap, "line %u is not 'NUMBER NAME' (NUMBER 1..%d, NAME a tenant)", lineno,
                     TENANT_MAX);
            return ERR_INVALID;
        }
        for (size_t i = 0; i < *n; i++)
            if (out[i].num == num || !strcmp(out[i].name, name)) {
                snprintf(msg, cap, "line %u repeats a number or a name", lineno);
                return ERR_INVALID;
            }
        out[*n].num = (uint32_t)num;
        memcpy(out[*n].name, name, nl + 1);
        (*n)++;
    }
    if (ferror(f)) {
        snprintf(msg, cap, "read error: %s", strerror(errno));
        return ERR_IO;
    }
    return 0;
}

/* Load dir's file; *st its stat (st_ino 0 when there is none). */
static int load_stat(const char *dir, tenant_entry *out, size_t *n, struct stat *st, char *msg,
                     size_t cap)
{
    char path[4096];
    *n = 0;
    memset(st, 0, sizeof *st);
    if (path_in(path, sizeof path, dir, TENANT_FILE)) {
        snprintf(msg, cap, "data directory path too long");
        return ERR_INVALID;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(msg, cap, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    if (fstat(fileno(f), st)) {
        snprintf(msg, cap, "%s: %s", path, strerror(errno));
        fclose(f);
        return ERR_IO;
    }
    char why[160];
    int rc = parse(f, out, n, why, sizeof why);
    fclose(f);
    if (rc)
        snprintf(msg, cap, "%s: %s", path, why);
    return rc;
}

int tenant_load(const char *dir, tenant_entry *out, size_t *n, char *msg, size_t cap)
{
    struct stat st;
    return load_stat(dir, out, n, &st, msg, cap);
}

int tenant_add(const char *dir, const char *name, uint32_t *num, char *msg, size_t cap)
{
    int rc = tenant_name_check(name, msg, cap);
    if (rc)
        return rc;
    if (mkdir(dir, 0775) && errno != EEXIST) {
        snprintf(msg, cap, "cannot create %s: %s", dir, strerror(errno));
        return ERR_IO;
    }
    char lock[4096], tmp[4096], path[4096];
    if (path_in(lock, sizeof lock, dir, TENANT_FILE ".lock") ||
        path_in(tmp, sizeof tmp, dir, TENANT_FILE ".tmp") ||
        path_in(path, sizeof path, dir, TENANT_FILE)) {
        snprintf(msg, cap, "data directory path too long");
        return ERR_INVALID;
    }
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (lfd < 0 || flock(lfd, LOCK_EX)) {
        snprintf(msg, cap, "%s: %s", lock, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        return ERR_IO;
    }
    tenant_entry *e = calloc(TENANT_MAX, sizeof *e);
    size_t n = 0;
    FILE *f = NULL;
    if (!e) {
        snprintf(msg, cap, "out of memory");
        rc = ERR_NOMEM;
        goto done;
    }
    if ((rc = tenant_load(dir, e, &n, msg, cap)))
        goto done;
    uint32_t next = 1;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(e[i].name, name)) {
            *num = e[i].num;
            snprintf(msg, cap, "tenant '%s' exists already (number %u)", name, (unsigned)e[i].num);
            rc = ERR_EXISTS;
            goto done;
        }
        if (e[i].num >= next)
            next = e[i].num + 1;
    }
    if (n == TENANT_MAX || next > TENANT_MAX) {
        snprintf(msg, cap, "a data directory holds at most %d tenants", TENANT_MAX);
        rc = ERR_LIMIT;
        goto done;
    }
    f = fopen(tmp, "w");
    if (!f) {
        snprintf(msg, cap, "%s: %s", tmp, strerror(errno));
        rc = ERR_IO;
        goto done;
    }
    fprintf(f, "# hortus tenants: number name (numbers are never reused; docs/TENANTS.md)\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%u %s\n", (unsigned)e[i].num, e[i].name);
    fprintf(f, "%u %s\n", (unsigned)next, name);
    int bad = fflush(f) || fsync(fileno(f));
    bad = fclose(f) || bad;
    f = NULL;
    if (bad || rename(tmp, path)) {
        snprintf(msg, cap, "writing %s: %s", path, strerror(errno));
        unlink(tmp);
        rc = ERR_IO;
        goto done;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd)) {
        snprintf(msg, cap, "%s: %s", dir, strerror(errno));
        rc = ERR_IO;
    }
    if (dfd >= 0)
        close(dfd);
    *num = next;
done:
    free(e);
    close(lfd); /* releases the flock */
    return rc;
}

int tenant_dir_of(const char *location, char *out, size_t cap)
{
    if (!strncmp(location, "postgres://", 11) || !strncmp(location, "postgresql://", 13))
        return ERR_UNSUPPORTED;
    const char *d = strncmp(location, "lmdb:", 5) ? location : location + 5;
    return snprintf(out, cap, "%s", d) < (int)cap ? 0 : ERR_INVALID;
}

/* ---- the server's registry ------------------------------------------------------ */

struct tenant_reg {
    pthread_mutex_t mu;
    char *dir;
    struct stat st; /* of the file last read (st_ino 0: there was none) */
    size_t n;
    tenant_entry e[TENANT_MAX];
};

int tenant_reg_open(const char *dir, tenant_reg **out, char *msg, size_t cap)
{
    tenant_reg *g = calloc(1, sizeof *g);
    if (!g || !(g->dir = strdup(dir))) {
        free(g);
        snprintf(msg, cap, "out of memory");
        return ERR_NOMEM;
    }
    int rc = load_stat(dir, g->e, &g->n, &g->st, msg, cap);
    if (rc) {
        free(g->dir);
        free(g);
        return rc;
    }
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return 0;
}

void tenant_reg_free(tenant_reg *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g->dir);
    free(g);
}

static int find_locked(const tenant_reg *g, const char *name, size_t n, uint32_t *num)
{
    for (size_t i = 0; i < g->n; i++)
        if (strlen(g->e[i].name) == n && !memcmp(g->e[i].name, name, n)) {
            *num = g->e[i].num;
            return 1;
        }
    return 0;
}

/* Read the file again when it is another than the one last read. A damaged file
 * keeps the tenants already known (they never go away) and is reported once. */
static void refresh_locked(tenant_reg *g)
{
    char path[4096];
    struct stat st;
    if (path_in(path, sizeof path, g->dir, TENANT_FILE) || stat(path, &st))
        return;
    if (st.st_ino == g->st.st_ino && st.st_dev == g->st.st_dev &&
        st.st_mtim.tv_sec == g->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == g->st.st_mtim.tv_nsec &&
        st.st_size == g->st.st_size)
        return;
    tenant_entry *e = malloc(TENANT_MAX * sizeof *e);
    size_t n;
    char msg[300];
    if (!e)
        return;
    int rc = load_stat(g->dir, e, &n, &st, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "hortus: tenants: %s (the tenants known stay served)\n", msg);
    } else {
        memcpy(g->e, e, n * sizeof *e);
        g->n = n;
    }
    g->st = st;
    free(e);
}

int tenant_reg_find(tenant_reg *g, const char *name, size_t n, uint32_t *num)
{
    pthread_mutex_lock(&g->mu);
    int found = find_locked(g, name, n, num);
    if (!found) {
        refresh_locked(g);
        found = find_locked(g, name, n, num);
    }
    pthread_mutex_unlock(&g->mu);
    return found;
}

size_t tenant_reg_list(tenant_reg *g, tenant_entry *out, size_t max)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->n < max ? g->n : max;
    memcpy(out, g->e, n * sizeof *out);
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* ---- hortus tenant add|list ------------------------------------------------------ */

static void tenant_usage(FILE *f)
{
    fprintf(f,
            "usage: hortus tenant add NAME [--data DIR | DIR]   register a tenant, print its "
            "number\n"
            "       hortus tenant list [--data DIR | DIR]       name, number, resources\n"
            "  NAME: 1-%d of a-z 0-9 '-' (not first or last), not a resource type nor a "
            "reserved word;\n"
            "  the tenant is served at /fhir/NAME (docs/TENANTS.md). DIR: the data "
            "directory\n"
            "  (default ./hortus-data); a running server picks the new tenant up.\n",
            TENANT_NAME_MAX);
}

/* 1 when a process holds the store of dir (its flock on hortus.lock). */
static int store_busy(const char *dir)
{
    char path[4096];
    if (path_in(path, sizeof path, dir, "hortus.lock"))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    return busy;
}

static int tenant_list(const char *dir)
{
    tenant_entry *e = calloc(TENANT_MAX, sizeof *e);
    size_t n = 0;
    char msg[300];
    if (!e) {
        fprintf(stderr, "hortus tenant: out of memory\n");
        return 1;
    }
    int rc = tenant_load(dir, e, &n, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "hortus tenant: %s\n", msg);
        free(e);
        return 1;
    }
    char mdb[4096];
    struct stat sb;
    int have_data = !path_in(mdb, sizeof mdb, dir, "data.mdb") && stat(mdb, &sb) == 0;
    int busy = have_data && store_busy(dir);
    store *st = NULL;
    store_reader *rd = NULL;
    if (have_data && !busy) {
        char spec[4100];
        snprintf(spec, sizeof spec, "lmdb:%s", dir);
        if (store_open(spec, NULL, &st) || store_read_begin(st, &rd)) {
            fprintf(stderr, "hortus tenant: cannot open %s: resource counts left out\n", dir);
            rd = NULL;
        }
    }
    if (busy)
        fprintf(stderr,
                "hortus tenant: a server is using %s: resource counts left out (ask "
                "it: GET /fhir/NAME?_summary=count ... per type)\n",
                dir);
    printf("%-32s %6s %s\n", "NAME", "NUMBER", "RESOURCES");
    for (size_t i = 0; i <= n; i++) {
        uint32_t num = i ? e[i - 1].num : 0;
        const char *name = i ? e[i - 1].name : "(default)";
        uint64_t cur = 0, versions = 0;
        if (rd)
            store_count(rd, num, NULL, &cur, &versions);
        if (rd || !have_data)
            printf("%-32s %6u %llu\n", name, (unsigned)num, (unsigned long long)cur);
        else
            printf("%-32s %6u -\n", name, (unsigned)num);
    }
    store_read_end(rd);
    store_close(st);
    free(e);
    return 0;
}

int tenant_main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL, *name = NULL, *dir = NULL;
    if (cmd && (!strcmp(cmd, "-h") || !strcmp(cmd, "--help"))) {
        tenant_usage(stdout);
        return 0;
    }
    if (!cmd || (strcmp(cmd, "add") && strcmp(cmd, "list"))) {
        if (cmd)
            fprintf(stderr, "hortus tenant: unknown command '%s' (add or list)\n", cmd);
        tenant_usage(stderr);
        return 2;
    }
    int want_name = !strcmp(cmd, "add");
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            tenant_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--data")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hortus tenant: --data needs a value\n");
                return 2;
            }
            if (dir) {
                fprintf(stderr, "hortus tenant: the data directory is given twice\n");
                return 2;
            }
            dir = argv[++i];
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hortus tenant: unknown option '%s'\n", argv[i]);
            tenant_usage(stderr);
            return 2;
        }
        if (want_name && !name) {
            name = argv[i];
        } else if (!dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "hortus tenant: unexpected argument '%s'\n", argv[i]);
            tenant_usage(stderr);
            return 2;
        }
    }
    if (!dir)
        dir = "./hortus-data";
    if (!want_name)
        return tenant_list(dir);
    if (!name) {
        fprintf(stderr, "hortus tenant add: give the tenant's NAME\n");
        tenant_usage(stderr);
        return 2;
    }
    uint32_t num = 0;
    char msg[300];
    int rc = tenant_add(dir, name, &num, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "hortus tenant add: %s\n", msg);
        return rc == ERR_INVALID || rc == ERR_EXISTS ? 2 : 1;
    }
    printf("%u\n", (unsigned)num);
    return 0;
}
