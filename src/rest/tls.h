/*
 * tls.h -- load the certificate and key of `hortus serve --tls-cert --tls-key`
 * (tls.c) and check them before the HTTP daemon sees them.
 *
 * libmicrohttpd takes PEM text and, given a bad file, only fails to start with
 * no reason. So the files are read here and parsed with OpenSSL, and each way
 * they can be wrong gets its own message naming the file: missing or unreadable,
 * larger than REST_TLS_MAX_FILE, not a PEM certificate, not a PEM private key
 * (an encrypted key is refused: nobody is there to type its passphrase), or a
 * key that does not belong to the certificate.
 */
#ifndef HORTUS_REST_TLS_H
#define HORTUS_REST_TLS_H

#include <stddef.h>

#define REST_TLS_MAX_FILE (1u << 20) /* bytes of a certificate (chain) or key file */

/* The TLS versions and ciphers offered (GnuTLS priority string, libmicrohttpd's
 * TLS library): GnuTLS's defaults restricted to TLS 1.3 and 1.2. */
#define REST_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct rest_tls {
    char *cert_pem; /* NUL-terminated file contents; owned, freed by rest_tls_free */
    char *key_pem;
} rest_tls;

/* Reads and checks both files. 0 with *out filled; or ERR_INVALID / ERR_IO /
 * ERR_NOMEM with a message in msg (out then holds nothing to free). */
int rest_tls_load(const char *cert_path, const char *key_path, rest_tls *out, char *msg,
                  size_t msgsz);

/* Frees the texts (the key is wiped first). NULL fields are fine. */
void rest_tls_free(rest_tls *t);

#endif
