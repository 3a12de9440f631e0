/* The processes of one job: a single process, or the ranks of an MPI job (`mpirun -np N zfviz
 * scan ...`). CMake links one implementation: tools/mpi/world_mpi.c when MPI is found (option
 * ZF_MPI), tools/mpi/world_none.c otherwise, which refuses to run as one rank of several. */
#ifndef ZFT_WORLD_H
#define ZFT_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "zf/status.h"

typedef struct zft_world {
    int rank, size;  /* 0 and 1 for a single process */
    int local_rank;  /* the rank among those on this host (a GPU per local rank) */
    int joined;      /* MPI was initialised and must be finalised */
} zft_world;

/* The MPI this program was built with ("Open MPI 4.1.4"), or NULL. */
const char *zft_world_library(void);

/* Joins the job when the environment says that a launcher (mpirun, srun) started this process as
 * one rank of several; otherwise w is the single process. */
zf_status zft_world_join(zft_world *w);
void zft_world_leave(zft_world *w);

/* The largest rc over all ranks (rc itself in a single process): every rank calls it at the same
 * point, so that all go on or all stop. */
int zft_world_agree(const zft_world *w, int rc);

/* Rank `from` sends the file at path to rank 0, which writes it to dest (created, 0600); every
 * other rank does nothing. On rank 0 the status says whether dest is complete; a sender that
 * cannot read its file tells rank 0, which reports it naming the rank. */
zf_status zft_world_copy_to_root(const zft_world *w, int from, const char *path, const char *dest);

/* ---- a scan over the ranks (tools/scan_world.c) ---- */

/* Where rank w->rank keeps its shard of the scan into `out_db`: in dir (NULL: $TMPDIR, else /tmp:
 * disk local to its node), named after out_db's name and a hash of its absolute folder, and
 * "K-of-N", so that running the same job again finds and continues it. */
zf_status zft_world_shard_path(const zft_world *w, const char *dir, const char *out_db, char *buf,
                               size_t cap);

/* After every rank's scan (rc: its exit code): when all succeeded, rank 0 gathers the shard
 * databases and merges them into out_db (zf_db_merge). Returns the job's exit code on every
 * rank; errors are printed, as "zfviz CMD [rank K/N]: ...", by the rank that met them. */
int zft_world_merge(const char *cmd, const zft_world *w, int rc, const char *shard_db,
                    const char *out_db);

#endif
