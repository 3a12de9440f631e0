/* Every out-of-memory branch run, as SQLite tests its own: for each operation, the N-th allocation
 * is made to fail (zf_alloc_fail_after) for N = 0, 1, 2, ... until the operation completes without
 * meeting the failure. Each failure must be reported as an error whose message says what memory
 * was wanted, nothing may crash, and under the sanitizer build nothing may leak (LeakSanitizer
 * runs at exit). The scan's commit is tried the same way through SQLite's allocator, and the
 * database must be as it was before the scan, or as the scan's first commit (the run recorded,
 * no image yet) left it, or complete: never a chunk half-written. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/alloc.h"
#include "zf/dataset.h"
#include "zf/db.h"
#include "zf/io.h"
#include "zf/model.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/onnx.h"
#include "zf/train.h"

typedef zf_status (*op_fn)(void *ctx);

/* Runs op with the n-th allocation failing for n = 0, 1, ... and returns how many allocations the
 * operation makes. op frees whatever it made, on success and on failure alike. */
static int64_t fault_loop(const char *what, op_fn op, void *ctx, const char *must_name)
{
    for (int64_t n = 0; n < 1000000; n++) {
        zf_alloc_fail_after(n);
        zf_status st = op(ctx);
        int hit = zf_alloc_fault_hit();
        zf_alloc_fail_after(-1);
        if (!hit) {
            cr_assert_eq(st, ZF_OK, "%s: fails with no allocation failing: %s", what, zf_last_error());
            return n;
        }
        const char *m = zf_last_error();
        cr_assert_neq(st, ZF_OK, "%s: allocation %lld failed, yet it reported success", what,
                      (long long)n);
        cr_assert(strstr(m, "memory") || strstr(m, "allocate"),
                  "%s: allocation %lld failed with a message that does not say so: %s", what,
                  (long long)n, m);
        if (must_name)
            cr_assert(strstr(m, must_name), "%s: allocation %lld: message does not name %s: %s", what,
                      (long long)n, must_name, m);
    }
    cr_assert_fail("%s: more than a million allocations", what);
    return -1;
}

/* ---- loaders ---- */

static zf_status op_npy(void *ctx)
{
    zf_tensor *t = NULL;
    zf_status st = zf_npy_read(ctx, &t);
    zf_tensor_free(t);
    return st;
}

Test(alloc_fault, npy_read)
{
    const char *path = tu_fixture("npy/f32_4d.npy");
    cr_assert_gt(fault_loop("npy", op_npy, (void *)path, path), 0);
}

typedef struct {
    const char *path;
    zf_net *net;
} net_file;

static zf_status op_image(void *ctx)
{
    net_file *c = ctx;
    zf_tensor *t = NULL;
    zf_status st = zf_input_load(c->path, c->net, &t);
    zf_tensor_free(t);
    return st;
}

static void image_loop(const char *rel)
{
    net_file c = {tu_fixture(rel), NULL};
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &c.net), ZF_OK);
    cr_assert_gt(fault_loop(rel, op_image, &c, c.path), 1);
    zf_net_free(c.net);
}

Test(alloc_fault, jpeg_load_and_preprocess) { image_loop("image/baseline.jpg"); }
Test(alloc_fault, progressive_jpeg_load_and_preprocess) { image_loop("image/progressive.jpg"); }
Test(alloc_fault, png_load_and_preprocess) { image_loop("image/rgb.png"); }

static zf_status op_safetensors(void *ctx)
{
    net_file *c = ctx;
    return zf_net_load_safetensors(c->net, c->path);
}

static zf_status op_model(void *ctx)
{
    zf_net *net = NULL;
    zf_status st = zf_model_load(ctx, &net);
    zf_net_free(net);
    return st;
}

typedef struct {
    const char *path;
    zf_net *net;
    float *momentum;
} ckpt;

static zf_status op_checkpoint(void *ctx)
{
    ckpt *c = ctx;
    zf_meta meta;
    zf_status st = zf_model_load_checkpoint(c->net, c->path, c->momentum, &meta);
    if (!st)
        zf_meta_free(&meta);
    return st;
}

Test(alloc_fault, safetensors_weights_whole_model_and_checkpoint)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("zfnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_init_random(net, 7), ZF_OK);
    char w[512], m[512], k[512];
    snprintf(w, sizeof w, "%s/w.safetensors", tu_tmpdir("allocfault"));
    snprintf(m, sizeof m, "%s/m.safetensors", tu_tmpdir("allocfault"));
    snprintf(k, sizeof k, "%s/k.safetensors", tu_tmpdir("allocfault"));
    size_t np = (size_t)zf_net_param_count(net);
    float *mom = calloc(np, sizeof *mom);
    cr_assert_eq(zf_net_save_safetensors(net, w), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_model_save(net, m, NULL, NULL), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_model_save(net, k, NULL, mom), ZF_OK, "%s", zf_last_error());
    net_file c = {w, net};
    fault_loop("safetensors weights", op_safetensors, &c, w);
    cr_assert_gt(fault_loop("whole model", op_model, m, m), 1);
    ckpt kc = {k, net, mom};
    fault_loop("checkpoint", op_checkpoint, &kc, k);
    free(mom);
    zf_net_free(net);
}

static zf_status op_onnx(void *ctx)
{
    zf_net *net = NULL;
    zf_status st = zf_onnx_load(ctx, NULL, &net);
    zf_net_free(net);
    return st;
}

Test(alloc_fault, onnx_load)
{
    const char *path = tu_fixture("onnx/bvlc_alexnet_op9.onnx");
    cr_assert_gt(fault_loop("onnx", op_onnx, (void *)path, NULL), 10);
}

/* ---- nets and what runs on them ---- */

static zf_status op_build(void *ctx)
{
    zf_net *net = NULL;
    zf_status st = zf_net_new_builtin(ctx, &net);
    zf_net_free(net);
    return st;
}

Test(alloc_fault, build_every_builtin_net)
{
    for (int i = 0; zf_builtin_archs[i]; i++)
        cr_assert_gt(fault_loop(zf_builtin_archs[i], op_build, (void *)zf_builtin_archs[i], NULL), 1);
}

static zf_status op_idx(void *ctx)
{
    (void)ctx;
    char img[4096];
    snprintf(img, sizeof img, "%s", tu_fixture("dataset/small-images.idx3.gz"));
    zf_dataset *ds = NULL;
    zf_status st = zf_dataset_load_idx(img, tu_fixture("dataset/small-labels.idx1.gz"), &ds);
    zf_dataset_free(ds);
    return st;
}

static zf_status op_folder(void *ctx)
{
    zf_dataset *ds = NULL;
    zf_status st = zf_dataset_load_folder(ctx, 24, &ds);
    zf_dataset_free(ds);
    return st;
}

Test(alloc_fault, dataset_idx_and_image_folder)
{
    cr_assert_gt(fault_loop("idx dataset", op_idx, NULL, NULL), 1);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_fixture("dataset/folder"));
    cr_assert_gt(fault_loop("folder dataset", op_folder, dir, NULL), 1);
}

typedef struct {
    zf_net *net;
    const float *input;
    int32_t labels[2];
} train_ctx;

/* A trainer made, one backprop with dropout and one update: what a training step allocates. */
static zf_status op_train_step(void *ctx)
{
    train_ctx *c = ctx;
    zf_trainer *t = NULL;
    zf_status st = zf_trainer_new(c->net, 2, &t);
    if (!st)
        st = zf_trainer_backprop(t, c->input, c->labels, 2, 3, NULL, NULL);
    if (!st) {
        zf_sgd opt = {0};
        opt.lr = 0.01f;
        zf_trainer_update(t, &opt);
    }
    zf_trainer_free(t);
    return st;
}

static zf_net *ready_net(const char *arch, float **input, int n)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin(arch, &net), ZF_OK);
    cr_assert_eq(zf_net_init_random(net, 11), ZF_OK);
    size_t len = (size_t)n * net->in_c * net->in_h * net->in_w;
    *input = malloc(len * sizeof **input);
    tu_fill_uniform(*input, len, 5, -1, 1);
    return net;
}

/* A forward on a fresh net (its buffers are allocated by the first forward) with allocation k
 * failing; after a failure the same net must still run once memory is there again. */
static void forward_loop(const char *arch, int n)
{
    for (int64_t k = 0; k < 100000; k++) {
        float *in;
        zf_net *net = ready_net(arch, &in, n);
        zf_alloc_fail_after(k);
        zf_status st = zf_net_reserve(net, n);
        if (!st)
            st = zf_net_forward(net, in, n);
        int hit = zf_alloc_fault_hit();
        zf_alloc_fail_after(-1);
        if (hit) {
            cr_assert_neq(st, ZF_OK, "%s forward: allocation %lld failed, yet it reported success",
                          arch, (long long)k);
            cr_assert(strstr(zf_last_error(), "memory"), "%s forward: allocation %lld: %s", arch,
                      (long long)k, zf_last_error());
            cr_assert(!zf_net_reserve(net, n) && !zf_net_forward(net, in, n),
                      "%s: forward after a failed one: %s", arch, zf_last_error());
        } else {
            cr_assert_eq(st, ZF_OK, "%s forward: %s", arch, zf_last_error());
            cr_assert_gt(k, 0, "%s forward allocates nothing", arch);
        }
        zf_net_free(net);
        free(in);
        if (!hit)
            return;
    }
    cr_assert_fail("%s forward: too many allocations", arch);
}

Test(alloc_fault, training_step)
{
    float *in;
    train_ctx c = {ready_net("alexnet-mini", &in, 2), NULL, {1, 7}};
    c.input = in;
    cr_assert_gt(fault_loop("training step", op_train_step, &c, NULL), 1);
    zf_net_free(c.net);
    free(in);
}

Test(alloc_fault, forward_mini_nets)
{
    forward_loop("alexnet-mini", 2);
    forward_loop("zfnet-mini", 1);
}

typedef struct {
    zf_net *net;
    float *out;
    zf_deconv_req req;
} deconv_ctx;

static zf_status op_deconv(void *ctx)
{
    deconv_ctx *c = ctx;
    return zf_net_deconv(c->net, c->out, 1, &c->req);
}

Test(alloc_fault, deconv)
{
    float *in;
    zf_net *net = ready_net("zfnet-mini", &in, 1);
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    cr_assert_eq(zf_net_forward(net, in, 1), ZF_OK);
    int conv = zf_net_find_conv(net, "conv2");
    cr_assert_geq(conv, 0);
    int ch = 3, y = -1, x = -1;
    deconv_ctx c = {net, malloc(sizeof(float) * (size_t)net->in_c * net->in_h * net->in_w),
                    {.layer = conv, .mode = ZF_DECONV_UNIT, .channel = &ch, .y = &y, .x = &x}};
    fault_loop("deconv", op_deconv, &c, NULL);
    c.req.mode = ZF_DECONV_MAP;
    c.req.lrn_backward = 1;
    fault_loop("deconv (map, LRN backward)", op_deconv, &c, NULL);
    free(c.out);
    free(in);
    zf_net_free(net);
}

typedef struct {
    zf_net *net;
    float *in;
    zf_occlusion_params p;
} occ_ctx;

static zf_status op_occlusion(void *ctx)
{
    occ_ctx *c = ctx;
    zf_occlusion_result *r = NULL;
    zf_status st = zf_occlusion_run(c->net, c->in, &c->p, &r);
    zf_occlusion_result_free(r);
    return st;
}

Test(alloc_fault, occlusion_brute_and_incremental)
{
    occ_ctx c;
    c.net = ready_net("zfnet-mini", &c.in, 1);
    zf_occlusion_params_default(&c.p);
    c.p.patch = 40;
    c.p.stride = 36;
    c.p.layer = zf_net_find_conv(c.net, "conv2");
    c.p.method = ZF_OCCLUSION_BRUTE;
    cr_assert_gt(fault_loop("occlusion (brute)", op_occlusion, &c, NULL), 1);
    c.p.method = ZF_OCCLUSION_INCREMENTAL;
    cr_assert_gt(fault_loop("occlusion (incremental)", op_occlusion, &c, NULL), 1);
    free(c.in);
    zf_net_free(c.net);
}

/* ---- the scan's commit, through SQLite's allocator ---- */

static sqlite3_mem_methods sq_orig;
static int64_t sq_countdown = -1, sq_count;
static int sq_hit;

static void *sq_malloc(int n)
{
    sq_count++;
    if (sq_countdown >= 0 && sq_countdown-- == 0) {
        sq_hit = 1;
        return NULL;
    }
    return sq_orig.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
    sq_count++;
    if (sq_countdown >= 0 && sq_countdown-- == 0) {
        sq_hit = 1;
        return NULL;
    }
    return sq_orig.xRealloc(p, n);
}

/* A fingerprint of every table's rows (FNV-1a over the text of each value), leaving out the
 * columns that hold the time of writing. */
static uint64_t db_print(const char *path)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *tables, *rows;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "ORDER BY name", -1, &tables, NULL), SQLITE_OK);
    uint64_t h = 1469598103934665603u;
    while (sqlite3_step(tables) == SQLITE_ROW) {
        char q[256];
        snprintf(q, sizeof q, "SELECT * FROM \"%s\" ORDER BY 1, 2", sqlite3_column_text(tables, 0));
        cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &rows, NULL), SQLITE_OK, "%s", q);
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(rows); i++) {
                const char *col = sqlite3_column_name(rows, i);
                if (!strcmp(col, "created") || !strcmp(col, "started") || !strcmp(col, "updated") ||
                    !strcmp(col, "finished"))
                    continue;
                const unsigned char *v = sqlite3_column_text(rows, i);
                for (const unsigned char *p = v ? v : (const unsigned char *)"\x01NULL"; *p; p++)
                    h = (h ^ *p) * 1099511628211u;
                h = (h ^ 0xff) * 1099511628211u;
            }
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(tables);
    sqlite3_close(db);
    return h;
}

/* The database as the scan leaves it once its run is recorded (committed before any image). */
static const char *started_path;
static uint64_t started_print;

static void on_started(void *ctx, const zf_scan_result *res)
{
    (void)ctx;
    (void)res;
    int64_t saved = sq_countdown;
    sq_countdown = -1;
    started_print = db_print(started_path);
    sq_countdown = saved;
}

/* cp from to, without the write-ahead log and shared memory files a previous round left */
static void copy_db(const char *from, const char *to)
{
    char side[600];
    snprintf(side, sizeof side, "%s-wal", to);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", to);
    unlink(side);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    cr_assert(in && out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static zf_status scan_once(const char *path, zf_net *net, const char *const *imgs, int n, int64_t fail)
{
    zf_db *db = NULL;
    zf_status st = zf_db_open(path, NULL, &db);
    cr_assert_eq(st, ZF_OK, "%s", zf_last_error());
    zf_scan_opts o = {.top_k = 2, .batch = 2, .chunk = 64, .images_arg = "images",
                      .started = on_started};
    started_path = path;
    started_print = 0;
    zf_scan_result r;
    sq_hit = 0;
    sq_count = 0;
    sq_countdown = fail;
    st = zf_db_scan(db, net, imgs, n, &o, &r);
    sq_countdown = -1;
    zf_db_close(db);
    return st;
}

Test(alloc_fault, scan_commit_leaves_the_database_as_before_or_complete)
{
    sqlite3_shutdown();
    cr_assert_eq(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_orig), SQLITE_OK);
    sqlite3_mem_methods m = sq_orig;
    m.xMalloc = sq_malloc;
    m.xRealloc = sq_realloc;
    cr_assert_eq(sqlite3_config(SQLITE_CONFIG_MALLOC, &m), SQLITE_OK);
    cr_assert_eq(sqlite3_initialize(), SQLITE_OK);

    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_init_random(net, 3), ZF_OK);
    const char *imgs[3] = {tu_fixture("image/baseline.jpg"), tu_fixture("image/rgb.png"),
                           tu_fixture("image/grey.png")};
    /* in memory (/dev/shm) where there is one: every round commits, and fsync is slow on disk */
    char dir[256];
    snprintf(dir, sizeof dir, "/dev/shm/zf-allocfault-%d", (int)getpid());
    if (mkdir(dir, 0700) != 0)
        snprintf(dir, sizeof dir, "%s", tu_tmpdir("allocfault-scan"));
    char empty[512], done[512], work[512];
    snprintf(empty, sizeof empty, "%s/empty.db", dir);
    snprintf(done, sizeof done, "%s/done.db", dir);
    snprintf(work, sizeof work, "%s/work.db", dir);
    zf_db *db = NULL;
    cr_assert_eq(zf_db_open(empty, NULL, &db), ZF_OK, "%s", zf_last_error());
    zf_db_close(db);
    uint64_t before = db_print(empty);
    cr_assert_eq(tu_system("cp '%s' '%s'", empty, done), 0);
    cr_assert_eq(scan_once(done, net, imgs, 3, -1), ZF_OK, "%s", zf_last_error());
    uint64_t after = db_print(done), registered = started_print;
    cr_assert_neq(before, after);
    /* A scan makes thousands of SQLite allocations (a row per unit and layer); every one of the
     * first 200 fails in turn, then every step-th, about 400 rounds in all. */
    int64_t total = sq_count, step = total / 200 > 1 ? total / 200 : 1, k, failed = 0, rounds = 0;
    for (k = 0; k <= total + 1; k += k < 200 ? 1 : step, rounds++) {
        copy_db(empty, work);
        zf_status st = scan_once(work, net, imgs, 3, k);
        if (!sq_hit) {
            cr_assert_eq(st, ZF_OK, "scan: %s", zf_last_error());
            cr_assert_eq(db_print(work), after);
            continue;
        }
        uint64_t now = db_print(work);
        if (st == ZF_OK) {
            cr_assert_eq(now, after, "scan: SQLite allocation %lld failed, the scan reported "
                         "success, but the database is not a complete scan's", (long long)k);
        } else {
            failed++;
            cr_assert(now == before || now == registered || now == after, "scan: SQLite allocation "
                      "%lld failed (%s): the database is neither as before, nor with the run recorded, "
                      "nor complete", (long long)k, zf_last_error());
        }
    }
    cr_assert_gt(failed, rounds / 2, "only %lld of %lld SQLite allocation failures failed the scan",
                 (long long)failed, (long long)rounds);
    cr_log_info("scan: %lld SQLite allocations, %lld rounds, %lld failed the scan", (long long)total,
                (long long)rounds, (long long)failed);
    zf_net_free(net);
    tu_system("rm -rf '%s'", dir);
}
