/*
 * server.h -- start and stop the hortus HTTP server (for `hortus serve` and tests).
 *
 * The server borrows the store: it must stay open until rest_server_stop()
 * returns. rest_server_stop() waits for writes still waiting on their commit,
 * then closes every connection.
 */
#ifndef HORTUS_REST_SERVER_H
#define HORTUS_REST_SERVER_H

struct store;
typedef struct rest_server rest_server;

typedef struct rest_server_opts {
    unsigned port;        /* 0 = any free port (see rest_server_port) */
    unsigned threads;     /* HTTP threads; 0 = one per core */
    const char *base_url; /* public FHIR base, e.g. "https://x.org/fhir"; NULL = from Host */
} rest_server_opts;

/* Listen and serve. 0 and *out, or ERR_NOMEM / ERR_IO (cannot listen). */
int rest_server_start(const rest_server_opts *o, struct store *st, rest_server **out);

/* The port actually bound. */
unsigned rest_server_port(const rest_server *srv);

/* Stop accepting, finish writes in flight, close connections, free. NULL ok. */
void rest_server_stop(rest_server *srv);

/* `hortus serve` (declared in cli.h as well). */
int serve_main(int argc, char **argv);

#endif
