/*
 * zfile.c -- reading plain, gzip and Zstandard files as one stdio stream (see zfile.h).
 *
 * A compressed file is a cookie stream (fopencookie): its read function pulls raw
 * bytes from the file in ZF_IN_BYTES blocks and inflates them into the caller's buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <zlib.h>
#include <zstd.h>

#include "base/zfile.h"

#define ZF_IN_BYTES (256u << 10)

struct zfile {
    zf_kind kind;
    FILE *raw;  /* the file itself */
    FILE *out;  /* what the caller reads: raw, or the decompressing cookie stream */
    uint64_t in; /* raw bytes consumed */
    const char *failed;
    unsigned char *ib; /* input block */
    size_t ipos, ilen;
    int eof;      /* raw reached its end */
    int member;   /* a gzip member or zstd frame is open (not yet ended) */
    z_stream zs;
    int zs_init;
    ZSTD_DCtx *zd;
};

zf_kind zf_kind_of(const char *path)
{
    size_t n = strlen(path);
    if (n > 3 && !strcmp(path + n - 3, ".gz"))
        return ZF_GZIP;
    if (n > 4 && !strcmp(path + n - 4, ".zst"))
        return ZF_ZSTD;
    return ZF_PLAIN;
}

size_t zf_base_len(const char *path)
{
    size_t n = strlen(path);
    switch (zf_kind_of(path)) {
    case ZF_GZIP:
        return n - 3;
    case ZF_ZSTD:
        return n - 4;
    default:
        return n;
    }
}

/* Refill the input block when it is used up: 0, or -1 on a read error. */
static int refill(zfile *z)
{
    if (z->ipos < z->ilen || z->eof)
        return 0;
    z->ipos = 0;
    z->ilen = fread(z->ib, 1, ZF_IN_BYTES, z->raw);
    z->in += z->ilen;
    if (z->ilen < ZF_IN_BYTES) {
        if (ferror(z->raw)) {
            z->failed = "the file cannot be read";
            return -1;
        }
        z->eof = 1;
    }
    return 0;
}

static ssize_t fail(zfile *z, const char *why)
{
    if (!z->failed)
        z->failed = why;
    errno = EIO;
    return -1;
}

static ssize_t gz_read(zfile *z, char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (refill(z))
            return -1;
        int end = z->ipos == z->ilen; /* the end of the file */
        if (end && !z->member)
            break;
        if (!z->member) { /* the next member begins */
            if (inflateReset2(&z->zs, 16 + MAX_WBITS) != Z_OK)
                return fail(z, "the gzip decoder failed");
            z->member = 1;
        }
        z->zs.next_in = z->ib + z->ipos;
        z->zs.avail_in = (uInt)(z->ilen - z->ipos);
        z->zs.next_out = (Bytef *)out + got;
        z->zs.avail_out = (uInt)(n - got);
        int r = inflate(&z->zs, Z_NO_FLUSH);
        z->ipos = z->ilen - z->zs.avail_in;
        size_t before = got;
        got = n - z->zs.avail_out;
        if (end && r != Z_STREAM_END && got == before) /* no input left, nothing came out */
            return fail(z, "the gzip data is truncated");
        if (r == Z_STREAM_END)
            z->member = 0;
        else if (r == Z_MEM_ERROR)
            return fail(z, "out of memory while decompressing");
        else if (r != Z_OK && r != Z_BUF_ERROR)
            return fail(z, "the gzip data is corrupt");
    }
    return (ssize_t)got;
}

static ssize_t zstd_read(zfile *z, char *out, size_t n)
{
    ZSTD_outBuffer ob = {out, n, 0};
    while (ob.pos < n) {
        if (refill(z))
            return -1;
        int end = z->ipos == z->ilen;
        if (end && !z->member)
            break;
        ZSTD_inBuffer ib = {z->ib, z->ilen, z->ipos};
        size_t before = ob.pos;
        size_t r = ZSTD_decompressStream(z->zd, &ob, &ib);
        z->ipos = ib.pos;
        if (ZSTD_isError(r))
            return fail(z, "the zstd data is corrupt");
        if (end && r != 0 && ob.pos == before)
            return fail(z, "the zstd data is truncated");
        z->member = r != 0; /* 0: a frame ended exactly here */
    }
    return (ssize_t)ob.pos;
}

static ssize_t cookie_read(void *c, char *out, size_t n)
{
    zfile *z = c;
    if (z->failed)
        return fail(z, z->failed);
    return z->kind == ZF_GZIP ? gz_read(z, out, n) : zstd_read(z, out, n);
}

zfile *zf_open(const char *path, const char **why)
{
    *why = NULL;
    zfile *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->kind = zf_kind_of(path);
    if (!(z->raw = fopen(path, "rb"))) {
        int e = errno;
        free(z);
        errno = e;
        return NULL;
    }
    if (z->kind == ZF_PLAIN) {
        z->out = z->raw;
        return z;
    }
    unsigned char magic[4] = {0};
    size_t m = fread(magic, 1, 4, z->raw);
    int ok = z->kind == ZF_GZIP ? m >= 2 && magic[0] == 0x1f && magic[1] == 0x8b
                                : m == 4 && magic[0] == 0x28 && magic[1] == 0xb5 &&
                                      magic[2] == 0x2f && magic[3] == 0xfd;
    if (!ok && m > 0) {
        *why = z->kind == ZF_GZIP ? "the file is named .gz but is not gzip data"
                                  : "the file is named .zst but is not Zstandard data";
        zf_close(z);
        return NULL;
    }
    rewind(z->raw);
    if (!(z->ib = malloc(ZF_IN_BYTES)))
        goto nomem;
    if (z->kind == ZF_GZIP) {
        if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK)
            goto nomem;
        z->zs_init = 1;
    } else if (!(z->zd = ZSTD_createDCtx())) {
        goto nomem;
    }
    cookie_io_functions_t io = {.read = cookie_read};
    if (!(z->out = fopencookie(z, "r", io)))
        goto nomem;
    return z;
nomem:
    zf_close(z);
    errno = ENOMEM;
    return NULL;
}

FILE *zf_stream(zfile *z)
{
    return z->out;
}

uint64_t zf_in_bytes(const zfile *z)
{
    if (z->kind == ZF_PLAIN) {
        off_t o = ftello(z->raw);
        return o > 0 ? (uint64_t)o : 0;
    }
    return z->in - (z->ilen - z->ipos);
}

const char *zf_failed(const zfile *z)
{
    if (z->failed)
        return z->failed;
    return ferror(z->out) ? "the file cannot be read" : NULL;
}

int zf_skip(zfile *z, uint64_t n)
{
    if (z->kind == ZF_PLAIN)
        return fseeko(z->raw, (off_t)n, SEEK_SET) ? -1 : 0;
    char tmp[65536];
    while (n) {
        size_t want = n < sizeof tmp ? (size_t)n : sizeof tmp;
        size_t got = fread(tmp, 1, want, z->out);
        if (got < want)
            return -1;
        n -= got;
    }
    return 0;
}

void zf_close(zfile *z)
{
    if (!z)
        return;
    if (z->out && z->out != z->raw)
        fclose(z->out);
    if (z->raw)
        fclose(z->raw);
    if (z->zs_init)
        inflateEnd(&z->zs);
    ZSTD_freeDCtx(z->zd);
    free(z->ib);
    free(z);
}

int zf_verify(const char *path, const char **why, uint64_t *lines)
{
    *lines = 0;
    zfile *z = zf_open(path, why);
    if (!z) {
        if (!*why)
            *why = "the file cannot be read";
        return -1;
    }
    char tmp[65536];
    size_t got;
    while ((got = fread(tmp, 1, sizeof tmp, z->out)) > 0)
        for (const char *p = tmp; (p = memchr(p, '\n', (size_t)(tmp + got - p))); p++)
            ++*lines;
    *why = zf_failed(z);
    zf_close(z);
    return *why ? -1 : 0;
}
