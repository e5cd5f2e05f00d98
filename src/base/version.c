/* version.c -- `hortus version`. */
#include <stdio.h>

#include "cli.h"

int version_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("hortus %s (FHIR R4 4.0.1)\n", HORTUS_VERSION);
    return 0;
}
