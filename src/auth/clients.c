/*
 * clients.c -- the clients of the built-in authorization server: DIR/auth-clients.json
 * (issuer.h draws it), and `hortus client add|list|remove`.
 *
 *   {"clients": [{"client_id": "Xq3...", "name": "lab feed", "scope": "system/Observation.rs",
 *                 "jwks": {"keys": [...]}}]}
 *
 * A file rather than the store: the server reads it again on every token request, so
 * a client added or removed while it runs counts from the next token on, and the
 * command needs neither the server stopped nor the store's lock. Writers take an
 * exclusive flock on DIR/auth-clients.lock and replace the file whole (temporary file,
 * fsync, rename), so a reader sees the old list or the new one, never half of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/issuer.h"
#include "base/err.h"
#include "base/hash.h"
#include "json/json.h"

#define CLIENTS_FILE "auth-clients.json"

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Read a whole file (at most max bytes) into a. 0, ERR_NOTFOUND (none), ERR_IO,
 * ERR_TOOBIG, ERR_NOMEM. */
static int slurp(arena *a, const char *path, size_t max, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    char *t = arena_alloc(a, max + 1);
    size_t n = t ? fread(t, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!t)
        return ERR_NOMEM;
    if (bad)
        return ERR_IO;
    if (n > max)
        return ERR_TOOBIG;
    t[n] = 0;
    *text = t;
    *len = n;
    return 0;
}

/* The registry of dir: its "clients" array (NULL when there is no file). */
static int load_registry(const char *dir, arena *a, json_val **clients, char *msg, size_t msgsz)
{
    *clients = NULL;
    char *path = path_in(dir, CLIENTS_FILE);
    if (!path)
        return ERR_NOMEM;
    char *text;
    size_t len;
    int rc = slurp(a, path, AUTH_MAX_CLIENTS_BYTES, &text, &len);
    if (rc == ERR_NOTFOUND) {
        free(path);
        return 0;
    }
    json_val *root;
    if (!rc && json_parse(a, text, len, 0, &root, NULL))
        rc = ERR_INVALID;
    if (!rc) {
        json_val *c = json_get(root, "clients");
        if (!c || c->type != JSON_ARRAY)
            rc = ERR_INVALID;
        else
            *clients = c;
    }
    if (rc && rc != ERR_NOMEM)
        snprintf(msg, msgsz, "%s: %s", path,
                 rc == ERR_INVALID ? "not a client registry ({\"clients\": [...]})" : err_str(rc));
    free(path);
    return rc;
}

int auth_client_find(const char *dir, arena *a, const char *client_id, auth_client *out, char *msg,
                     size_t msgsz)
{
    json_val *clients;
    int rc = load_registry(dir, a, &clients, msg, msgsz);
    if (rc)
        return rc;
    for (uint32_t i = 0; clients && i < clients->n; i++) {
        const json_val *c = &clients->u.items[i];
        const char *id = json_get_str(c, "client_id");
        if (!id || strcmp(id, client_id))
            continue;
        const json_val *jwks = json_get(c, "jwks");
        out->client_id = id;
        out->name = json_get_str(c, "name");
        out->scope = json_get_str(c, "scope");
        if (!out->scope || !jwks) {
            snprintf(msg, msgsz, "client '%.100s' has no scope or jwks", id);
            return ERR_INVALID;
        }
        buf b = BUF_INIT;
        jw w;
        jw_init(&w, &b, 0);
        jw_val(&w, jwks);
        char *t = b.err ? NULL : arena_strndup(a, b.data, b.len);
        out->jwks_len = b.len;
        buf_free(&b);
        if (!t)
            return ERR_NOMEM;
        out->jwks = t;
        return 0;
    }
    return ERR_NOTFOUND;
}

/* ---- writing the registry ---------------------------------------------------------- */

/* Write clients (each a JSON object; skip is left out, add appended when not NULL) as
 * dir's registry. 0 or an error with msg. */
static int save_registry(const char *dir, const json_val *clients, const char *skip,
                         const char *add, char *msg, size_t msgsz)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, 1);
    jw_obj(&w);
    jw_key(&w, "clients");
    jw_arr(&w);
    for (uint32_t i = 0; clients && i < clients->n; i++) {
        const char *id = json_get_str(&clients->u.items[i], "client_id");
        if (skip && id && !strcmp(id, skip))
            continue;
        jw_val(&w, &clients->u.items[i]);
    }
    if (add)
        jw_raw(&w, add, strlen(add));
    jw_end(&w);
    jw_end(&w);
    buf_putc(&b, '\n');
    char *path = path_in(dir, CLIENTS_FILE), *tmp = path_in(dir, CLIENTS_FILE ".tmp");
    int rc = 0;
    if (b.err || !path || !tmp) {
        snprintf(msg, msgsz, "out of memory");
        rc = ERR_NOMEM;
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        snprintf(msg, msgsz, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        rc = ERR_IO;
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
out:
    buf_free(&b);
    free(path);
    free(tmp);
    return rc;
}

/* An exclusive lock on dir's registry for a read-modify-write: the fd, or -1. */
static int lock_registry(const char *dir)
{
    char *p = path_in(dir, "auth-clients.lock");
    int fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    free(p);
    if (fd >= 0 && flock(fd, LOCK_EX)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* ---- the command --------------------------------------------------------------------- */

static void client_usage(FILE *f)
{
    fprintf(f, "usage: hortus client add --jwks FILE --scope \"system/*.rs ...\" [--name N] DIR\n"
               "       hortus client list DIR\n"
               "       hortus client remove CLIENT_ID DIR\n"
               "  Clients of the built-in authorization server (`hortus serve --auth-server`,\n"
               "  docs/AUTH.md), kept in DIR/" CLIENTS_FILE ". --jwks: the client's public\n"
               "  keys (a JWKS with an RSA key of at least 2048 bits or an EC P-384 key, for\n"
               "  RS384 or ES384 assertions); --scope: the system/ scopes it may be granted.\n");
}

/* 0 when every word of scope is a system/ resource scope; else 2 with a message. */
static int check_scopes(const char *scope)
{
    int any = 0;
    for (const char *p = scope; *p;) {
        while (*p == ' ')
            p++;
        const char *b = p;
        while (*p && *p != ' ')
            p++;
        if (p == b)
            break;
        size_t n = (size_t)(p - b);
        if (n < 8 || memcmp(b, "system/", 7) || !auth_scope_valid(b, n)) {
            fprintf(stderr,
                    "hortus client: bad scope '%.*s': a backend client's scopes are "
                    "system/TYPE.PERMS (e.g. system/*.rs, system/Observation.read)\n",
                    (int)n, b);
            return 2;
        }
        any = 1;
    }
    if (!any) {
        fprintf(stderr, "hortus client: --scope names no scope\n");
        return 2;
    }
    if (strlen(scope) > AUTH_MAX_SCOPE_LEN) {
        fprintf(stderr, "hortus client: --scope is longer than %d bytes\n", AUTH_MAX_SCOPE_LEN);
        return 2;
    }
    return 0;
}

static int client_add(const char *dir, const char *jwks_file, const char *scope, const char *name)
{
    arena *a = arena_new(0);
    if (!a)
        return 1;
    int ex = 2;
    char *text;
    size_t len;
    char msg[600];
    int rc = slurp(a, jwks_file, AUTH_MAX_JWKS_BYTES, &text, &len);
    if (rc) {
        fprintf(stderr, "hortus client: cannot read the JWKS file %s: %s\n", jwks_file,
                rc == ERR_NOTFOUND ? "no such file" : err_str(rc));
        goto out;
    }
    auth_keyset *ks = NULL;
    if ((rc = auth_keyset_parse(text, len, &ks, msg, sizeof msg))) {
        fprintf(stderr, "hortus client: %s: %s\n", jwks_file, msg);
        goto out;
    }
    unsigned algs = auth_keyset_algs(ks);
    auth_keyset_release(ks);
    if (!(algs & (AUTH_ALG_RS384 | AUTH_ALG_ES384))) {
        fprintf(stderr,
                "hortus client: %s has no key for RS384 or ES384 signatures (an RSA "
                "key, or an EC key on P-384)\n",
                jwks_file);
        goto out;
    }
    if (check_scopes(scope))
        goto out;
    if (name && (strlen(name) > 200 || strpbrk(name, "\t\n\r"))) {
        fprintf(stderr, "hortus client: --name must be at most 200 bytes on one line\n");
        goto out;
    }
    json_val *jwks;
    if (json_parse(a, text, len, 0, &jwks, NULL)) /* parsed above: cannot fail */
        goto out;
    /* the registry keeps the JWKS as given: a private key must never get there */
    const json_val *keys = json_get(jwks, "keys");
    for (uint32_t i = 0; keys && i < keys->n; i++)
        if (json_get(&keys->u.items[i], "d")) {
            fprintf(stderr, "hortus client: %s holds a private key (\"d\"): register the "
                            "client's public keys only\n", jwks_file);
            goto out;
        }
    ex = 1;
    if (mkdir(dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "hortus client: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    int lk = lock_registry(dir);
    if (lk < 0) {
        fprintf(stderr, "hortus client: cannot lock the client registry in %s\n", dir);
        goto out;
    }
    json_val *clients;
    if ((rc = load_registry(dir, a, &clients, msg, sizeof msg))) {
        fprintf(stderr, "hortus client: %s\n", rc == ERR_NOMEM ? "out of memory" : msg);
        close(lk);
        goto out;
    }
    if (clients && clients->n >= AUTH_MAX_CLIENTS) {
        fprintf(stderr, "hortus client: %d clients are registered already\n", AUTH_MAX_CLIENTS);
        close(lk);
        goto out;
    }
    uint8_t rnd[16];
    char id[32];
    do { /* an id never starts like an option ('-') or looks odd ('_') on a command line */
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            close(lk);
            goto out;
        }
        hash_b64url(rnd, sizeof rnd, id);
    } while (id[0] == '-' || id[0] == '_');
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, 1);
    jw_obj(&w);
    jw_key(&w, "client_id");
    jw_str(&w, id);
    jw_key(&w, "name");
    jw_str(&w, name ? name : "");
    jw_key(&w, "scope");
    jw_str(&w, scope);
    jw_key(&w, "jwks");
    jw_val(&w, jwks);
    jw_end(&w);
    buf_putc(&b, 0);
    rc = b.err ? ERR_NOMEM : save_registry(dir, clients, NULL, b.data, msg, sizeof msg);
    buf_free(&b);
    close(lk);
    if (rc) {
        fprintf(stderr, "hortus client: %s\n", msg);
        goto out;
    }
    printf("%s\n", id);
    ex = 0;
out:
    arena_free(a);
    return ex;
}

static int client_list(const char *dir)
{
    arena *a = arena_new(0);
    json_val *clients;
    char msg[600];
    if (!a)
        return 1;
    int rc = load_registry(dir, a, &clients, msg, sizeof msg);
    if (rc)
        fprintf(stderr, "hortus client: %s\n", rc == ERR_NOMEM ? "out of memory" : msg);
    for (uint32_t i = 0; !rc && clients && i < clients->n; i++) {
        const json_val *c = &clients->u.items[i];
        const char *id = json_get_str(c, "client_id"), *nm = json_get_str(c, "name");
        const char *sc = json_get_str(c, "scope");
        printf("%s\t%s\t%s\n", id ? id : "?", nm ? nm : "", sc ? sc : "");
    }
    arena_free(a);
    return rc ? 1 : 0;
}

static int client_remove(const char *dir, const char *id)
{
    arena *a = arena_new(0);
    if (!a)
        return 1;
    int ex = 1, lk = lock_registry(dir);
    json_val *clients = NULL;
    char msg[600];
    int rc = lk < 0 ? ERR_IO : load_registry(dir, a, &clients, msg, sizeof msg);
    if (lk < 0)
        fprintf(stderr, "hortus client: cannot lock the client registry in %s\n", dir);
    else if (rc)
        fprintf(stderr, "hortus client: %s\n", rc == ERR_NOMEM ? "out of memory" : msg);
    int found = 0;
    for (uint32_t i = 0; !rc && clients && i < clients->n; i++) {
        const char *cid = json_get_str(&clients->u.items[i], "client_id");
        found |= cid && !strcmp(cid, id);
    }
    if (!rc && !found)
        fprintf(stderr, "hortus client: no client '%s' in %s\n", id, dir);
    else if (!rc && save_registry(dir, clients, id, NULL, msg, sizeof msg))
        fprintf(stderr, "hortus client: %s\n", msg);
    else if (!rc)
        ex = 0;
    if (lk >= 0)
        close(lk);
    arena_free(a);
    return ex;
}

int client_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        client_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *jwks = NULL, *scope = NULL, *name = NULL;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--jwks") || !strcmp(o, "--scope") || !strcmp(o, "--name")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hortus client: %s needs a value\n", o);
                return 2;
            }
            const char *v = argv[++i];
            *(!strcmp(o, "--jwks") ? &jwks : !strcmp(o, "--scope") ? &scope : &name) = v;
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "hortus client: unknown option '%s'\n", o);
            client_usage(stderr);
            return 2;
        } else if (npos == 2) {
            fprintf(stderr, "hortus client: too many arguments ('%s')\n", o);
            return 2;
        } else {
            pos[npos++] = o;
        }
    }
    if (!strcmp(sub, "add")) {
        if (!jwks || !scope || npos != 1) {
            fprintf(stderr, "hortus client add: --jwks FILE, --scope SCOPES and DIR are "
                            "required\n");
            client_usage(stderr);
            return 2;
        }
        return client_add(pos[0], jwks, scope, name);
    }
    if (jwks || scope || name) {
        fprintf(stderr, "hortus client %s: --jwks, --scope and --name belong to add\n", sub);
        return 2;
    }
    if (!strcmp(sub, "list")) {
        if (npos != 1) {
            fprintf(stderr, "hortus client list: DIR is required\n");
            return 2;
        }
        return client_list(pos[0]);
    }
    if (!strcmp(sub, "remove")) {
        if (npos != 2) {
            fprintf(stderr, "hortus client remove: CLIENT_ID and DIR are required\n");
            return 2;
        }
        return client_remove(pos[1], pos[0]);
    }
    fprintf(stderr, "hortus client: unknown action '%s' (add, list, remove)\n", sub);
    client_usage(stderr);
    return 2;
}
