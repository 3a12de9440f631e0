/* zfviz: the command-line front of the toolkit; dispatches to the subcommands in cmd_*.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: zfviz <command> [options]   (zfviz <command> --help for its options)\n\n"
               "commands:\n");
    for (const zf_command *c = zf_commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

/* libgomp's threads spin while they wait for one another (OMP_WAIT_POLICY unset), so on a machine
 * whose cores are busy with other work every parallel region waits for a descheduled thread's time
 * slice: `train`, `eval` and the demo ran 3-6x slower beside another job on the 2-core machine
 * (the quick demo 118 s, 15 s with OMP_WAIT_POLICY=passive). On idle cores passive costs a wake-up
 * per parallel region, nothing a batch job notices. libgomp reads the policy once, when it is
 * loaded, so every command sets it and runs itself again; a policy the caller set is kept, and if
 * the exec fails the command runs as it is. */
static void rerun_with_passive_wait(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || setenv("OMP_WAIT_POLICY", "passive", 1))
        return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || (!strcmp(argv[1], "help") && argc < 3)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "help")) { /* zfviz help CMD: CMD's own --help */
        for (const zf_command *c = zf_commands; c->name; c++)
            if (!strcmp(argv[2], c->name)) {
                char prog[64];
                snprintf(prog, sizeof prog, "zfviz %s", c->name);
                char *args[] = {prog, "--help", NULL};
                optind = 1;
                return c->run(2, args);
            }
        fprintf(stderr, "zfviz help: unknown command '%s'\n", argv[2]);
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("zfviz %s\n", ZF_VERSION_STRING);
        return 0;
    }
    for (const zf_command *c = zf_commands; c->name; c++) {
        if (!strcmp(argv[1], c->name)) {
            rerun_with_passive_wait(argv);
            zft_install_sigint();
            /* getopt's own messages (unknown option, missing value) then name the command */
            char prog[64];
            snprintf(prog, sizeof prog, "zfviz %s", c->name);
            argv[1] = prog;
            zft_command = c->name;
            return c->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "zfviz: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
