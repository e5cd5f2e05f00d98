/*
 * tls.c -- read and check the PEM files of --tls-cert and --tls-key (see tls.h).
 *
 *   file --read--> PEM text --OpenSSL parse--> X509 / EVP_PKEY --match?--> ok
 *
 * The parsed objects are thrown away: libmicrohttpd (GnuTLS) parses the text again
 * for itself. OpenSSL is only the judge that lets every mistake be named.
 */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "rest/tls.h"

/* The whole file as a NUL-terminated string in *out (owned by the caller). */
static int read_pem_file(const char *what, const char *path, char **out, char *msg,
                         size_t msgsz)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msgsz, "%s %s: %s", what, path, strerror(errno));
        return ERR_IO;
    }
    char *text = malloc(REST_TLS_MAX_FILE + 1);
    if (!text) {
        fclose(f);
        snprintf(msg, msgsz, "out of memory");
        return ERR_NOMEM;
    }
    size_t n = fread(text, 1, REST_TLS_MAX_FILE + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        snprintf(msg, msgsz, "%s %s: cannot read it", what, path);
        free(text);
        return ERR_IO;
    }
    if (n > REST_TLS_MAX_FILE) {
        snprintf(msg, msgsz, "%s %s: larger than %u bytes, not a PEM file", what, path,
                 REST_TLS_MAX_FILE);
        free(text);
        return ERR_INVALID;
    }
    if (memchr(text, '\0', n)) {
        snprintf(msg, msgsz, "%s %s: holds NUL bytes, not a PEM file (DER is not accepted)",
                 what, path);
        free(text);
        return ERR_INVALID;
    }
    text[n] = '\0';
    *out = text;
    return 0;
}

/* A passphrase callback that has none to give: an encrypted key fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int rest_tls_load(const char *cert_path, const char *key_path, rest_tls *out, char *msg,
                  size_t msgsz)
{
    memset(out, 0, sizeof *out);
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    BIO *b = NULL;
    int rc = read_pem_file("--tls-cert", cert_path, &out->cert_pem, msg, msgsz);
    if (rc)
        goto fail;
    rc = read_pem_file("--tls-key", key_path, &out->key_pem, msg, msgsz);
    if (rc)
        goto fail;
    rc = ERR_INVALID;
    b = BIO_new_mem_buf(out->cert_pem, -1);
    if (!b || !(cert = PEM_read_bio_X509(b, NULL, no_passphrase, NULL))) {
        snprintf(msg, msgsz, "--tls-cert %s: no PEM certificate in it "
                 "(expected -----BEGIN CERTIFICATE-----)", cert_path);
        goto fail;
    }
    BIO_free(b);
    b = BIO_new_mem_buf(out->key_pem, -1);
    if (!b || !(key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL))) {
        snprintf(msg, msgsz, "--tls-key %s: no unencrypted PEM private key in it "
                 "(expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)", key_path);
        goto fail;
    }
    if (X509_check_private_key(cert, key) != 1) {
        snprintf(msg, msgsz, "--tls-key %s is not the private key of the certificate in "
                 "--tls-cert %s", key_path, cert_path);
        goto fail;
    }
    rc = 0;
fail:
    ERR_clear_error();
    BIO_free(b);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (rc)
        rest_tls_free(out);
    return rc;
}

void rest_tls_free(rest_tls *t)
{
    if (!t)
        return;
    free(t->cert_pem);
    if (t->key_pem)
        OPENSSL_cleanse(t->key_pem, strlen(t->key_pem));
    free(t->key_pem);
    t->cert_pem = t->key_pem = NULL;
}
