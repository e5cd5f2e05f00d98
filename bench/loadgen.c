/*
 * loadgen.c -- the bench's bulk loader and fetcher (built by bench/run.sh with cc;
 * not part of the hortus binary).
 *
 *   loadgen put HOST PORT CONNECTIONS FILE.ndjson...
 *       PUT every line to /fhir/<resourceType>/<id> over CONNECTIONS keep-alive
 *       connections (one thread each) and print how many succeeded, per second.
 *       The files are loaded one after the other (the next starts when the last
 *       request of the previous one is answered), so resources of a later file may
 *       refer to those of an earlier one: the server checks references.
 *   loadgen get HOST PORT PATHS OUTDIR
 *       GET every path listed in the file PATHS (one per line, e.g.
 *       "/fhir/Patient/123") and store the body at OUTDIR/<path>, so a static
 *       file server can serve exactly the bytes hortus served.
 *
 * Why not curl or wrk: curl in a loop costs a process per resource, and wrk is
 * duration-driven where loading needs each resource exactly once. The client is
 * deliberately plain: blocking sockets, HTTP/1.1, Content-Length or chunked
 * responses. The resourceType and id are taken from the first two members of
 * each line, which is how `hortus generate` writes them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct item {
    const char *type, *id; /* not NUL-terminated */
    size_t type_len, id_len;
    const char *body;
    size_t body_len;
} item;

static item *items;
static size_t nitems;
static size_t batch_end; /* the workers take items up to here (the end of one file) */
static atomic_size_t next_item;
static atomic_size_t n_ok, n_fail;
static const char *host;
static int port;
static const char *outdir;
static int mode_get;

static int conn_open(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct rbuf {
    char *d;
    size_t len, cap, off; /* bytes [off, len) are unread */
} rbuf;

static int fill(int fd, rbuf *b)
{
    if (b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len < 65536) {
        size_t cap = b->cap ? b->cap * 2 : 262144;
        char *d = realloc(b->d, cap);
        if (!d)
            return -1;
        b->d = d;
        b->cap = cap;
    }
    ssize_t r;
    do
        r = recv(fd, b->d + b->len, b->cap - b->len, 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    b->len += (size_t)r;
    return 0;
}

/* find "\r\n" at or after `from`, filling as needed; returns its offset or -1 */
static long find_crlf(int fd, rbuf *b, size_t from)
{
    for (;;) {
        char *p = memmem(b->d + from, b->len - from, "\r\n", 2);
        if (p)
            return p - b->d;
        size_t keep = from - b->off;
        if (fill(fd, b))
            return -1;
        from = b->off + keep;
    }
}

/*
 * Read one response; its status into *status and its body appended to `body`
 * (when not NULL). Returns 0, or -1 when the connection broke. *close_after is
 * set when the server will close the connection.
 */
static int read_response(int fd, rbuf *b, int *status, rbuf *body, int *close_after)
{
    /* headers */
    char *end;
    while (!(end = memmem(b->d + b->off, b->len - b->off, "\r\n\r\n", 4)))
        if (fill(fd, b))
            return -1;
    size_t hlen = (size_t)(end - (b->d + b->off)) + 4;
    char *h = b->d + b->off;
    if (hlen < 12 || strncmp(h, "HTTP/1.", 7))
        return -1;
    *status = (int)strtol(h + 9, NULL, 10);
    long clen = -1;
    int chunked = 0;
    *close_after = 0;
    for (char *line = memmem(h, hlen, "\r\n", 2) + 2; line < h + hlen - 2;) {
        char *eol = memmem(line, (size_t)(h + hlen - line), "\r\n", 2);
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = strtol(line + 15, NULL, 10);
        else if (!strncasecmp(line, "Transfer-Encoding:", 18) &&
                 memmem(line, (size_t)(eol - line), "chunked", 7))
            chunked = 1;
        else if (!strncasecmp(line, "Connection:", 11) &&
                 memmem(line, (size_t)(eol - line), "close", 5))
            *close_after = 1;
        line = eol + 2;
    }
    b->off += hlen;
    if (body)
        body->len = 0;
    if (!chunked) {
        if (clen < 0)
            clen = 0;
        while (b->len - b->off < (size_t)clen)
            if (fill(fd, b))
                return -1;
        if (body) {
            if (body->cap < (size_t)clen + 1) {
                body->d = realloc(body->d, (size_t)clen + 1);
                body->cap = (size_t)clen + 1;
            }
            memcpy(body->d, b->d + b->off, (size_t)clen);
            body->len = (size_t)clen;
        }
        b->off += (size_t)clen;
        return 0;
    }
    for (;;) {
        long e = find_crlf(fd, b, b->off);
        if (e < 0)
            return -1;
        size_t n = strtoul(b->d + b->off, NULL, 16);
        b->off = (size_t)e + 2;
        while (b->len - b->off < n + 2)
            if (fill(fd, b))
                return -1;
        if (body && n) {
            if (body->cap < body->len + n + 1) {
                body->cap = (body->len + n + 1) * 2;
                body->d = realloc(body->d, body->cap);
            }
            memcpy(body->d + body->len, b->d + b->off, n);
            body->len += n;
        }
        b->off += n + 2;
        if (n == 0)
            return 0;
    }
}

static int write_out(const char *path, size_t path_len, const char *data, size_t len)
{
    char full[8192];
    if (strlen(outdir) + path_len + 1 > sizeof full)
        return -1;
    snprintf(full, sizeof full, "%s%.*s", outdir, (int)path_len, path);
    for (char *p = full + strlen(outdir) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(full, 0755);
            *p = '/';
        }
    FILE *f = fopen(full, "wb");
    if (!f)
        return -1;
    int bad = fwrite(data, 1, len, f) != len;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

static void *worker(void *arg)
{
    (void)arg;
    rbuf in = {0}, body = {0};
    char *req = NULL;
    size_t req_cap = 0;
    int fd = -1;
    for (;;) {
        size_t i = atomic_fetch_add(&next_item, 1);
        if (i >= batch_end)
            break;
        const item *it = &items[i];
        size_t need = it->body_len + it->type_len + it->id_len + 512;
        if (need > req_cap) {
            req_cap = need * 2;
            req = realloc(req, req_cap);
        }
        int n;
        if (mode_get)
            n = snprintf(req, req_cap, "GET %.*s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", (int)it->id_len,
                         it->id, host, port);
        else
            n = snprintf(req, req_cap,
                         "PUT /fhir/%.*s/%.*s HTTP/1.1\r\nHost: %s:%d\r\n"
                         "Content-Type: application/fhir+json\r\nPrefer: return=minimal\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         (int)it->type_len, it->type, (int)it->id_len, it->id, host, port,
                         it->body_len);
        int done = 0;
        for (int attempt = 0; attempt < 3 && !done; attempt++) {
            if (fd < 0 && (fd = conn_open()) < 0)
                continue;
            int status = 0, close_after = 0;
            if (send_all(fd, req, (size_t)n) ||
                (!mode_get && send_all(fd, it->body, it->body_len)) ||
                read_response(fd, &in, &status, mode_get ? &body : NULL, &close_after)) {
                close(fd);
                fd = -1;
                in.off = in.len = 0;
                continue;
            }
            done = 1;
            if (status >= 200 && status < 300) {
                if (mode_get && write_out(it->id, it->id_len, body.d, body.len)) {
                    atomic_fetch_add(&n_fail, 1);
                } else {
                    atomic_fetch_add(&n_ok, 1);
                }
            } else {
                if (atomic_fetch_add(&n_fail, 1) < 3)
                    fprintf(stderr, "loadgen: %.*s/%.*s -> HTTP %d\n", (int)it->type_len, it->type,
                            (int)it->id_len, it->id, status);
            }
            if (close_after) {
                close(fd);
                fd = -1;
                in.off = in.len = 0;
            }
        }
        if (!done)
            atomic_fetch_add(&n_fail, 1);
    }
    if (fd >= 0)
        close(fd);
    free(in.d);
    free(body.d);
    free(req);
    return NULL;
}

static const char *map_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    *len = (size_t)st.st_size;
    if (*len == 0) {
        close(fd);
        return "";
    }
    const char *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "loadgen: cannot map %s\n", path);
        exit(1);
    }
    return p;
}

static void add_item(item it)
{
    static size_t cap;
    if (nitems == cap) {
        cap = cap ? cap * 2 : 65536;
        items = realloc(items, cap * sizeof *items);
        if (!items) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    items[nitems++] = it;
}

/* the value of the first `"key":"` member at or after p, within the line */
static int member(const char *p, const char *eol, const char *key, const char **v, size_t *n)
{
    size_t kl = strlen(key);
    const char *k = memmem(p, (size_t)(eol - p), key, kl);
    if (!k)
        return -1;
    *v = k + kl;
    const char *q = memchr(*v, '"', (size_t)(eol - *v));
    if (!q)
        return -1;
    *n = (size_t)(q - *v);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[1], "put") && strcmp(argv[1], "get"))) {
        fprintf(stderr, "usage: loadgen put HOST PORT CONNECTIONS FILE.ndjson...\n"
                        "       loadgen get HOST PORT PATHS OUTDIR\n");
        return 2;
    }
    mode_get = !strcmp(argv[1], "get");
    host = argv[2];
    char *endp;
    port = (int)strtol(argv[3], &endp, 10);
    if (*endp || port < 1 || port > 65535) {
        fprintf(stderr, "loadgen: bad PORT '%s'\n", argv[3]);
        return 2;
    }
    int conns = 8;
    size_t *ends = calloc((size_t)argc + 1, sizeof *ends), nends = 0;
    if (!ends)
        return 1;
    if (mode_get) {
        if (argc != 6)
            return 2;
        outdir = argv[5];
        size_t len;
        const char *d = map_file(argv[4], &len);
        for (const char *p = d; p < d + len;) {
            const char *eol = memchr(p, '\n', (size_t)(d + len - p));
            if (!eol)
                eol = d + len;
            if (eol > p)
                add_item((item){.id = p, .id_len = (size_t)(eol - p)});
            p = eol + 1;
        }
    } else {
        conns = (int)strtol(argv[4], &endp, 10);
        if (*endp || conns < 1 || conns > 1024 || argc < 6) {
            fprintf(stderr, "loadgen: CONNECTIONS must be 1..1024, then files\n");
            return 2;
        }
        for (int f = 5; f < argc; f++) {
            size_t len;
            const char *d = map_file(argv[f], &len);
            for (const char *p = d; p < d + len;) {
                const char *eol = memchr(p, '\n', (size_t)(d + len - p));
                if (!eol)
                    eol = d + len;
                item it = {.body = p, .body_len = (size_t)(eol - p)};
                if (eol > p && !member(p, eol, "\"resourceType\":\"", &it.type, &it.type_len) &&
                    !member(p, eol, "\"id\":\"", &it.id, &it.id_len))
                    add_item(it);
                p = eol + 1;
            }
            ends[nends++] = nitems;
        }
    }
    if (!nends)
        ends[nends++] = nitems;
    double t0 = now_s();
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    for (size_t b = 0; b < nends; b++) { /* one file at a time */
        batch_end = ends[b];
        atomic_store(&next_item, b ? ends[b - 1] : 0); /* the workers overshoot by one each */
        for (int i = 0; i < conns; i++)
            pthread_create(&th[i], NULL, worker, NULL);
        for (int i = 0; i < conns; i++)
            pthread_join(th[i], NULL);
    }
    free(ends);
    double dt = now_s() - t0;
    size_t ok = atomic_load(&n_ok), bad = atomic_load(&n_fail);
    printf("%s %zu ok, %zu failed in %.2f s: %.0f/s over %d connections\n",
           mode_get ? "fetched" : "loaded", ok, bad, dt, dt > 0 ? (double)ok / dt : 0.0, conns);
    free(th);
    return bad ? 1 : 0;
}
