/*
 * main.c -- command-line dispatch only. Each subcommand lives with its subsystem
 * and has the signature int NAME_main(int argc, char **argv), argv[0] being the
 * subcommand name. Exit codes: 0 success, 1 failure, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"version", version_main, "version                       print the version"},
    {"serve", serve_main, "serve [--data DIR] [--port N] [--store lmdb:DIR] [--threads N] [--base-url URL]"},
    {"fhirpath", fp_cli_main, "fhirpath [--resource FILE.json] EXPRESSION   evaluate, print a JSON array"},
    {"validate", val_cli_main, "validate [--type TYPE] FILE...   check resources (.json, .ndjson, - = stdin)"},
    {"import", import_main, "import [--data DIR] [--tenant NAME] [--errors FILE] FILE|DIR...   load ndjson / Bundle files offline"},
    {"check", check_main, "check [--data DIR] [--audit DIR] verify a data directory (indices, hashes, counts, audit chain)"},
    {"tenant", tenant_main, "tenant add NAME [DIR] | tenant list [DIR]   partner hospitals (docs/TENANTS.md)"},
    {"client", client_main, "client add --jwks FILE --scope S [--name N] DIR | list DIR | remove ID DIR"},
    {"generate", synth_main, "generate --patients N [--seed S] --format ndjson|bundles OUTDIR"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hortus COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hortus: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
