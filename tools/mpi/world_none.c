/* The world of a build without MPI: always a single process. Started by a launcher as one rank of
 * several, it refuses to run: every rank would scan the whole list into the same database. */
#include <stdlib.h>

#include "world.h"

const char *zft_world_library(void)
{
    return NULL;
}

/* The launchers' variables: Open MPI's mpirun, and PMI's (MPICH's, Slurm's srun). */
static int launched_size(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1)
            return atoi(v);
    }
    return 1;
}

zf_status zft_world_join(zft_world *w)
{
    *w = (zft_world){0, 1, 0, 0};
    int n = launched_size();
    if (n > 1)
        return zf_error(ZF_ERR_UNSUPPORTED,
                        "started as one of %d ranks, but this zfviz was built without MPI (install "
                        "libopenmpi-dev and rebuild; or give each process --shard K/N and join the "
                        "databases with zfviz merge)",
                        n);
    return ZF_OK;
}

void zft_world_leave(zft_world *w)
{
    (void)w;
}

int zft_world_agree(const zft_world *w, int rc)
{
    (void)w;
    return rc;
}

zf_status zft_world_copy_to_root(const zft_world *w, int from, const char *path, const char *dest)
{
    (void)w;
    (void)from;
    (void)path;
    (void)dest;
    return zf_error(ZF_ERR_UNSUPPORTED, "built without MPI");
}
