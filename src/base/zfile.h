/*
 * zfile.h -- reading a file that may be compressed (prefix zf_): gzip (zlib) and
 * Zstandard, as a stdio stream, so that line readers (getline) need not know.
 *
 * The compression is chosen by the name (.gz, .zst) and checked against the magic
 * bytes: a .gz file that is not gzip is refused at open rather than decoded as noise.
 * Concatenated members (gzip) and frames (zstd) are read one after the other, as
 * gzip -dc and zstd -dc do. Corrupt or truncated data is a read error: the stream's
 * ferror() is set and zf_failed() says why, so a reader never mistakes it for the end.
 */
#ifndef HORTUS_BASE_ZFILE_H
#define HORTUS_BASE_ZFILE_H

#include <stdint.h>
#include <stdio.h>

typedef enum zf_kind { ZF_PLAIN, ZF_GZIP, ZF_ZSTD } zf_kind;

/* The kind a file name says (.gz, .zst, anything else plain). */
zf_kind zf_kind_of(const char *path);

/* The name without its compression suffix: its length (the whole length when plain). */
size_t zf_base_len(const char *path);

typedef struct zfile zfile;

/* Open path for reading, decompressing as its name says. NULL with errno set, or
 * with *why (a static message) when the data is not what the name says. */
zfile *zf_open(const char *path, const char **why);

/* The stream of decompressed bytes (owned by the zfile). */
FILE *zf_stream(zfile *z);

/* Bytes of the file consumed so far (compressed bytes for a compressed file). */
uint64_t zf_in_bytes(const zfile *z);

/* Why reading failed (a static message), or NULL when it did not. */
const char *zf_failed(const zfile *z);

/* Skip n decompressed bytes from the start: 0, or -1 (the data ended first, or failed). */
int zf_skip(zfile *z, uint64_t n);

/* Read a compressed file to its end and check it (gzip's CRC-32 and length of every
 * member, zstd's checksum where the frame has one): 0, or -1 with *why and *lines (the
 * complete lines before the damage). A compressed stream says whether it was damaged
 * only at its end, and damaged deflate data can still decode to plausible text, so a
 * reader that must not load altered data checks the whole file first. */
int zf_verify(const char *path, const char **why, uint64_t *lines);

void zf_close(zfile *z);

#endif
