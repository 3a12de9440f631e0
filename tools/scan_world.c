/* `mpirun -np N zfviz scan ...`: rank K scans the K-th of N shards into a database on its node's
 * own disk (resumable there, as any scan), then rank 0 gathers the shards and merges them into
 * the output, which then equals a one-process scan of the whole list (zf_db_merge). */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "world.h"
#include "zf/alloc.h"
#include "zf/db.h"

zf_status zft_world_shard_path(const zft_world *w, const char *dir, const char *out_db, char *buf,
                               size_t cap)
{
    if (!dir)
        dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char a[PATH_MAX], b[PATH_MAX], folder[PATH_MAX];
    snprintf(a, sizeof a, "%s", out_db);
    snprintf(b, sizeof b, "%s", out_db);
    if (!realpath(dirname(a), folder))
        return zf_error(ZF_ERR_IO, "%s: cannot find its folder: %s", out_db, strerror(errno));
    const char *name = basename(b);
    char key[PATH_MAX * 2], hex[65];
    snprintf(key, sizeof key, "%s/%s", folder, name);
    zf_db_sha256_hex(key, strlen(key), hex);
    int n = snprintf(buf, cap, "%s/%s.%.12s.shard-%d-of-%d.db", dir, name, hex, w->rank + 1,
                     w->size);
    if (n < 0 || (size_t)n >= cap)
        return zf_error(ZF_ERR_ARG, "%s: shard path too long", dir);
    return ZF_OK;
}

/* Rank 0's part: every other rank's shard received into a file beside its own, then the merge.
 * Each sender is received even after an error, so that none is left waiting. */
static int gather_and_merge(const char *label, const zft_world *w, const char *shard_db,
                            const char *out_db)
{
    int n = w->size, rc = 0;
    char **paths = zf_calloc((size_t)n, sizeof *paths);
    if (!paths) {
        rc = zft_fail(label, zf_error(ZF_ERR_NOMEM, "out of memory"));
        for (int r = 1; r < n; r++)
            zft_world_copy_to_root(w, r, NULL, "/dev/null");
        return rc;
    }
    paths[0] = zf_strdup(shard_db);
    for (int r = 1; r < n; r++) {
        char dest[PATH_MAX];
        snprintf(dest, sizeof dest, "%s.from-rank-%d.XXXXXX", shard_db, r);
        int fd = mkstemp(dest);
        if (fd >= 0) {
            close(fd);
            paths[r] = zf_strdup(dest);
        }
        zf_status s = zft_world_copy_to_root(w, r, NULL, fd >= 0 ? dest : "/dev/null");
        if (fd < 0 && !rc)
            rc = zft_fail(label, zf_error(ZF_ERR_IO, "%s: cannot create: %s", dest, strerror(errno)));
        else if (s && !rc)
            rc = zft_fail(label, s);
    }
    for (int r = 0; r < n && !rc; r++)
        if (!paths[r])
            rc = zft_fail(label, zf_error(ZF_ERR_NOMEM, "out of memory"));
    if (!rc) {
        zf_merge_result res;
        zf_status s = zf_db_merge(out_db, (const char *const *)paths, n, &res);
        if (s)
            rc = zft_fail(label, s);
        else if (res.n_ok == 0)
            rc = zft_fail(label, zf_error(ZF_ERR_IO, "no image could be read: all %lld failed",
                                          (long long)res.n_images));
        else
            printf("merged the %d ranks' shards into %s: run %lld, %lld images (%lld ok, %lld "
                   "failed)\n",
                   n, out_db, (long long)res.run_id, (long long)res.n_images, (long long)res.n_ok,
                   (long long)res.n_failed);
    }
    /* the received copies, and the empty log and index that the merge's reading left beside
     * them and beside rank 0's own shard (which stays, complete, for the next run) */
    for (int r = 0; r < n; r++)
        for (int k = r ? 0 : 1; paths[r] && k < 3; k++) {
            char p[PATH_MAX + 8];
            struct stat sb;
            snprintf(p, sizeof p, "%s%s", paths[r], (const char *[]){"", "-wal", "-shm"}[k]);
            if (r || k != 1 || (stat(p, &sb) == 0 && sb.st_size == 0))
                unlink(p);
            else
                break; /* a log with pages in it belongs to its database, and so does the index */
        }
    for (int r = 0; r < n; r++)
        free(paths[r]);
    free(paths);
    return rc;
}

int zft_world_merge(const char *cmd, const zft_world *w, int rc, const char *shard_db,
                    const char *out_db)
{
    char label[64];
    snprintf(label, sizeof label, "%s [rank %d/%d]", cmd, w->rank + 1, w->size);
    rc = zft_world_agree(w, rc);
    if (rc) {
        if (w->rank == 0)
            fprintf(stderr, "zfviz %s: a rank failed (see above); run the same command again to "
                            "continue: each rank resumes its shard\n", cmd);
        return rc;
    }
    int mine = 0;
    if (w->rank == 0) {
        mine = gather_and_merge(label, w, shard_db, out_db);
    } else {
        zf_status s = zft_world_copy_to_root(w, w->rank, shard_db, NULL);
        if (s)
            mine = zft_fail(label, s);
    }
    return zft_world_agree(w, mine);
}
