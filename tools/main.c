/* zfviz: the command-line front of the toolkit; dispatches to the subcommands in cmd_*.c. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: zfviz <command> [options]   (zfviz <command> --help for its options)\n\n"
               "commands:\n");
    for (const zf_command *c = zf_commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
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
    if (!strcmp(argv[1], "--version")) {
        printf("zfviz %s\n", ZF_VERSION_STRING);
        return 0;
    }
    for (const zf_command *c = zf_commands; c->name; c++) {
        if (!strcmp(argv[1], c->name)) {
            zft_install_sigint();
            return c->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "zfviz: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
