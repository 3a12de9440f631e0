/* The world of an MPI build: MPI is initialised only when a launcher started this process (a
 * plain `zfviz scan` stays a single process and pays nothing); files travel to rank 0 in chunks. */
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "world.h"

#define CHUNK ((int64_t)1 << 20) /* 1 MiB a message, from a static buffer: nothing to allocate */

static char chunk[CHUNK];

const char *zft_world_library(void)
{
    static char name[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!name[0] && MPI_Get_library_version(name, &len) == MPI_SUCCESS) {
        name[strcspn(name, ",\n")] = 0; /* "Open MPI v4.1.4, package: ..." */
    }
    return name;
}

static int launched(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

zf_status zft_world_join(zft_world *w)
{
    *w = (zft_world){0, 1, 0, 0};
    if (!launched())
        return ZF_OK;
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return zf_error(ZF_ERR_IO, "MPI_Init failed");
    w->joined = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(local, &w->local_rank);
        MPI_Comm_free(&local);
    }
    return ZF_OK;
}

void zft_world_leave(zft_world *w)
{
    if (w->joined)
        MPI_Finalize();
    w->joined = 0;
}

int zft_world_agree(const zft_world *w, int rc)
{
    if (w->size <= 1)
        return rc;
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

/* The sender: the file's size (-1: it could not be read), then its bytes. */
static zf_status send_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int64_t size = -1;
    if (fd >= 0) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end >= 0 && lseek(fd, 0, SEEK_SET) == 0)
            size = (int64_t)end;
    }
    char *buf = chunk;
    MPI_Send(&size, 1, MPI_INT64_T, 0, 0, MPI_COMM_WORLD);
    int ok = size >= 0;
    for (int64_t done = 0; done < size;) {
        int n = (int)(size - done < CHUNK ? size - done : CHUNK);
        if (pread(fd, buf, (size_t)n, (off_t)done) != n) {
            memset(buf, 0, (size_t)n); /* rank 0 still gets every byte it expects, then the verdict */
            ok = 0;
        }
        MPI_Send(buf, n, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
        done += n;
    }
    if (size >= 0)
        MPI_Send(&ok, 1, MPI_INT, 0, 2, MPI_COMM_WORLD);
    if (fd >= 0)
        close(fd);
    return ok ? ZF_OK : zf_error(ZF_ERR_IO, "%s: cannot read to send it to rank 0", path);
}

static zf_status recv_file(int from, const char *dest)
{
    int64_t size = 0;
    MPI_Recv(&size, 1, MPI_INT64_T, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (size < 0)
        return zf_error(ZF_ERR_IO, "rank %d could not read its shard database", from);
    int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *buf = chunk;
    int err = fd < 0 ? errno : 0;
    for (int64_t done = 0; done < size;) {
        int n = (int)(size - done < CHUNK ? size - done : CHUNK);
        /* received even after a local error, so that the sender is not left blocked */
        MPI_Recv(buf, n, MPI_BYTE, from, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (!err && write(fd, buf, (size_t)n) != n)
            err = errno ? errno : EIO;
        done += n;
    }
    int ok = 0;
    MPI_Recv(&ok, 1, MPI_INT, from, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (fd >= 0 && close(fd) != 0 && !err)
        err = errno;
    if (!ok)
        return zf_error(ZF_ERR_IO, "rank %d could not read its shard database", from);
    if (err)
        return zf_error(ZF_ERR_IO, "%s: cannot write rank %d's shard: %s", dest, from, strerror(err));
    return ZF_OK;
}

zf_status zft_world_copy_to_root(const zft_world *w, int from, const char *path, const char *dest)
{
    if (w->rank == from)
        return send_file(path);
    if (w->rank == 0)
        return recv_file(from, dest);
    return ZF_OK;
}
