/* zfviz: the command-line front of the toolkit; dispatches to the subcommands in cmd_*.c. */
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* The threads this process will run: OMP_NUM_THREADS's first number, else the cpus it may use. */
static int planned_threads(int cpus)
{
    const char *t = getenv("OMP_NUM_THREADS");
    return t && atoi(t) > 0 ? atoi(t) : cpus;
}

/* Runnable tasks other than this one, the least of a few looks at /proc/loadavg 2 ms apart (a
 * task busy throughout is seen in every one, a passing one not); -1 where it cannot be read. */
static int others_runnable(void)
{
    int least = -1;
    for (int k = 0; k < 5; k++) {
        FILE *f = fopen("/proc/loadavg", "r");
        int running = 0, total = 0;
        const int got = f ? fscanf(f, "%*f %*f %*f %d/%d", &running, &total) : 0;
        if (f)
            fclose(f);
        if (got != 2)
            return -1;
        if (least < 0 || running - 1 < least)
            least = running - 1 > 0 ? running - 1 : 0;
        if (k < 4)
            nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    return least;
}

/* GOMP_SPINCOUNT=3000 where the CPUs not taken by other runnable tasks hold every thread, else
 * OMP_WAIT_POLICY=passive (and passive where that cannot be told). */
static int wait_policy_here(void)
{
    int cpus = 1, others = others_runnable();
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set))
        cpus = CPU_COUNT(&set);
    if (others >= 0 && cpus - others >= planned_threads(cpus))
        return setenv("GOMP_SPINCOUNT", "3000", 1);
    return setenv("OMP_WAIT_POLICY", "passive", 1);
}

/* Two settings that libraries read once, when they are loaded, so every command sets them and
 * runs itself again (a setting the caller made is kept; if the exec fails the command runs as it
 * is):
 * - libgomp's threads spin 300,000 times while they wait for one another (OMP_WAIT_POLICY unset),
 *   so on a machine whose cores are busy with other work every parallel region waits for a
 *   descheduled thread's time slice: `train`, `eval` and the demo ran 3-6x slower beside another
 *   job on the 2-core machine (the quick demo 118 s, 15 s with OMP_WAIT_POLICY=passive). Never
 *   spinning (passive) costs a wake-up per parallel region instead, about 90 us on a virtual
 *   machine, where it is an interrupt through the hypervisor. A short spin (GOMP_SPINCOUNT=3000:
 *   about 0.2 ms, then sleep) is the best of both where the threads have the cores to themselves,
 *   and passive is where they do not. On the 2-core machine, quiet: the quick demo 9.2 s spinning
 *   a little against 14.4 passive, AlexNet's forward at batch 1 (23 regions) 17.1 ms against
 *   18.7; beside a busy core: the demo 21.6 s against 13.9, the forward 34.0 ms against 30.4. So
 *   the command counts the other runnable tasks as it starts (wait_policy_here) and spins a little
 *   where enough cores are left for its threads, else stays passive. What the caller set in
 *   OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept.
 * - OpenBLAS takes a CPU it does not know for an old one and runs SSE kernels on it (zf/cpu.h):
 *   OPENBLAS_CORETYPE then names the kernels the CPU's features allow, and ZFVIZ_BLAS_GUESS keeps
 *   what OpenBLAS chose alone, for `zfviz info`. */
static void rerun_tuned(char **argv)
{
    int again = !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") && !wait_policy_here();
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
            rerun_tuned(argv);
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
