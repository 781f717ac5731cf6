#include <stdio.h>

#include "cli/commands.h"

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "shoal %s: not implemented yet\n", argv[0]);
    return 2;
}
