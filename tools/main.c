/* zfviz: the command-line front of the toolkit; dispatches to the subcommands in cmd_*.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "zf/cpu.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: zfviz <command> [options]   (zfviz <command> --help for its options)\n\n"
               "commands:\n");
    for (const zf_command *c = zf_commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

/* Two settings that libraries read once, when they are loaded, so every command sets them and
 * runs itself again (a setting the caller made is kept; if the exec fails the command runs as it
 * is):
 * - libgomp's threads spin 300,000 times while they wait for one another (OMP_WAIT_POLICY unset),
 *   so on a machine whose cores are busy with other work every parallel region waits for a
 *   descheduled thread's time slice: `train`, `eval` and the demo ran 3-6x slower beside another
 *   job on the 2-core machine (the quick demo 118 s, 15 s with OMP_WAIT_POLICY=passive). Never
 *   spinning (passive) costs a wake-up per parallel region instead, about 90 us on a virtual
 *   machine, where it is an interrupt through the hypervisor. The commands that work on one image
 *   at a time (SPINNERS) spin a little (GOMP_SPINCOUNT=3000: about 0.2 ms, then sleep): AlexNet's
 *   forward at batch 1 has 23 regions, 18.7 ms passive against 17.1 spinning a little, 34.0
 *   against 30.4 beside a busy core. The rest stay passive: beside the scan's decoding thread a
 *   spinning thread takes the core the decoder needs (the quick demo 21.6 s against 13.9).
 *   Either is kept where the caller set OMP_WAIT_POLICY or GOMP_SPINCOUNT.
 * - OpenBLAS takes a CPU it does not know for an old one and runs SSE kernels on it (zf/cpu.h):
 *   OPENBLAS_CORETYPE then names the kernels the CPU's features allow, and ZFVIZ_BLAS_GUESS keeps
 *   what OpenBLAS chose alone, for `zfviz info`. */
static const char *const SPINNERS[] = {"forward", "deconv", "occlude", "attribute", "optimize", NULL};

static void rerun_tuned(const char *command, char **argv)
{
    int spin = 0;
    for (const char *const *s = SPINNERS; *s; s++)
        spin |= !strcmp(command, *s);
    int again = !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") &&
                !(spin ? setenv("GOMP_SPINCOUNT", "3000", 1) : setenv("OMP_WAIT_POLICY", "passive", 1));
    const char *better = getenv("OPENBLAS_CORETYPE") ? NULL : zf_blas_better_core_here();
    if (better && !setenv("ZFVIZ_BLAS_GUESS", zf_blas_core(), 1) &&
        !setenv("OPENBLAS_CORETYPE", better, 1))
        again = 1;
    if (again)
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
            rerun_tuned(c->name, argv);
            /* ZFVIZ_ISA forces a narrower set of kernels (to test them, or to compare): a set this
             * CPU cannot run is refused rather than lowered, so that a run never claims to have
             * used kernels it did not */
            if (zf_cpu_set_kernels(getenv("ZFVIZ_ISA"))) {
                fprintf(stderr, "zfviz: ZFVIZ_ISA: %s\n", zf_last_error());
                return 2;
            }
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
