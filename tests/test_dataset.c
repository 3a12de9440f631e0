/* Training data: IDX files (hand-made and the real Fashion-MNIST) decode as Python decodes them,
 * damaged files fail with one-line errors naming them, image folders load as torchvision's
 * Resize + CenterCrop, batches match torch's bilinear interpolate, and the augmentations are
 * reproducible and do what they say. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zf/dataset.h"
#include "zf/io.h"

static const char *fx(const char *name) { return tu_fixturef("dataset/%s", name); }

static zf_tensor *npy(const char *name)
{
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(fx(name), &t), ZF_OK, "%s (fixtures not generated?)",
                 zf_last_error());
    return t;
}

/* st and ds as returned: call first, then check (argument order is unspecified in C). */
static void expect_error(zf_status st, zf_dataset *ds, const char *must_name, const char *word)
{
    cr_assert_neq(st, ZF_OK, "no error (expected one naming %s)", must_name);
    cr_assert_null(ds, "output not cleared on error");
    const char *m = zf_last_error();
    cr_expect(strstr(m, must_name), "message does not name %s: %s", must_name, m);
    if (word)
        cr_expect(strstr(m, word), "message lacks '%s': %s", word, m);
    cr_expect_null(strchr(m, '\n'), "message is not one line: %s", m);
}

/* A dataset of n copies of the (h, w, c) image `px`. */
static zf_dataset *copies(const uint8_t *px, int64_t n, int c, int h, int w)
{
    zf_dataset *ds = zf_dataset_new(n, c, h, w, 1);
    cr_assert_not_null(ds, "%s", zf_last_error());
    size_t per = (size_t)c * h * w;
    for (int64_t i = 0; i < n; i++)
        memcpy(ds->pixels + (size_t)i * per, px, per);
    snprintf(ds->source, sizeof ds->source, "copies");
    return ds;
}

/* A dataset from an (n, h, w, 3) uint8 .npy fixture. */
static zf_dataset *rgb_fixture(const char *name)
{
    zf_tensor *t = npy(name);
    cr_assert(t->ndim == 4 && t->shape[3] == 3);
    zf_dataset *ds = zf_dataset_new(t->shape[0], 3, (int)t->shape[1], (int)t->shape[2], 1);
    cr_assert_not_null(ds, "%s", zf_last_error());
    for (int64_t i = 0; i < t->size; i++)
        ds->pixels[i] = (uint8_t)zf_tensor_i32(t)[i];
    snprintf(ds->source, sizeof ds->source, "%s", name);
    zf_tensor_free(t);
    return ds;
}

static zf_net *plain_net(int c, int h, int w, zf_color_order order)
{
    zf_net *net = zf_net_new("test", c, h, w);
    cr_assert_not_null(net);
    net->pre.order = order;
    return net;
}

/* The batch of images 0..n-1 against a float32 reference of the same shape. */
static void expect_batch_matches(const zf_dataset *ds, const zf_net *net, const char *ref_name,
                                 double tol)
{
    zf_tensor *ref = npy(ref_name);
    int n = (int)ref->shape[0];
    cr_assert(ref->ndim == 4 && ref->shape[1] == net->in_c && ref->shape[2] == net->in_h &&
              ref->shape[3] == net->in_w, "%s: shape does not fit the net", ref_name);
    int64_t *idx = malloc(sizeof *idx * (size_t)n);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    float *in = malloc(sizeof(float) * (size_t)ref->size);
    int32_t *lab = malloc(sizeof *lab * (size_t)n);
    cr_assert_eq(zf_dataset_batch(in, lab, ds, idx, n, net, NULL, 1), ZF_OK, "%s",
                 zf_last_error());
    size_t at;
    double err = tu_max_rel_err_f(in, zf_tensor_f32(ref), (size_t)ref->size, 1.0, &at);
    cr_expect_leq(err, tol, "%s: error %g at %zu: %g vs torch %g", ref_name, err, at,
                  (double)in[at], (double)zf_tensor_f32(ref)[at]);
    for (int i = 0; i < n; i++)
        cr_expect_eq(lab[i], ds->labels[i], "label %d", i);
    free(idx);
    free(in);
    free(lab);
    zf_tensor_free(ref);
}

/* ---- IDX ---- */

static void expect_small(const zf_dataset *ds)
{
    zf_tensor *im = npy("small_images.npy"), *lb = npy("small_labels.npy");
    cr_assert_eq(ds->n, 13);
    cr_assert(ds->c == 1 && ds->h == 5 && ds->w == 7, "stored %d x %d x %d", ds->c, ds->h, ds->w);
    for (int64_t i = 0; i < im->size; i++)
        cr_assert_eq(ds->pixels[i], zf_tensor_i32(im)[i], "pixel %lld", (long long)i);
    for (int i = 0; i < 13; i++)
        cr_assert_eq(ds->labels[i], zf_tensor_i32(lb)[i], "label %d", i);
    cr_assert_eq(ds->n_classes, 7);
    for (int k = 0; k < 7; k++) {
        char num[8];
        snprintf(num, sizeof num, "%d", k);
        cr_expect_str_eq(ds->class_names[k], num);
    }
    zf_tensor_free(im);
    zf_tensor_free(lb);
}

Test(dataset, idx_plain_and_gzip_read_as_numpy_wrote_them)
{
    const char *pairs[][2] = {{"small-images.idx3", "small-labels.idx1"},
                              {"small-images.idx3.gz", "small-labels.idx1.gz"},
                              {"small-images.idx3.gz", "small-labels.idx1"}};
    for (int p = 0; p < 3; p++) {
        char img[4096];
        snprintf(img, sizeof img, "%s", fx(pairs[p][0]));
        zf_dataset *ds = NULL;
        cr_assert_eq(zf_dataset_load_idx(img, fx(pairs[p][1]), &ds), ZF_OK, "%s",
                     zf_last_error());
        expect_small(ds);
        cr_expect_str_eq(ds->source, img);
        zf_dataset_free(ds);
    }
}

Test(dataset, damaged_idx_files_are_one_line_errors_naming_them)
{
    struct {
        const char *images, *labels, *named, *word;
    } cases[] = {
        {"bad-magic.idx3", "small-labels.idx1", "bad-magic.idx3", "not an IDX file"},
        {"float-type.idx3", "small-labels.idx1", "float-type.idx3", "element type 0x0d"},
        {"small-labels.idx1", "small-labels.idx1", "small-labels.idx1", "0x00000803"},
        {"small-images.idx3", "small-images.idx3", "small-images.idx3", "0x00000801"},
        {"zero-rows.idx3", "small-labels.idx1", "zero-rows.idx3", "13 images of 0 x 7"},
        {"trunc-header.idx3", "small-labels.idx1", "trunc-header.idx3", "truncated"},
        {"trunc-data.idx3", "small-labels.idx1", "trunc-data.idx3", "truncated"},
        {"trunc-data.idx3.gz", "small-labels.idx1", "trunc-data.idx3.gz", "truncated"},
        {"trunc-stream.idx3.gz", "small-labels.idx1", "trunc-stream.idx3.gz", "truncated"},
        {"trunc-trailer.idx3.gz", "small-labels.idx1", "trunc-trailer.idx3.gz", "gzip"},
        {"bad-crc.idx3.gz", "small-labels.idx1", "bad-crc.idx3.gz", "gzip"},
        {"trailing.idx3", "small-labels.idx1", "trailing.idx3", "data after"},
        {"small-images.idx3", "short-labels.idx1", "short-labels.idx1", "12 labels"},
        {"no-such-file.idx3", "small-labels.idx1", "no-such-file.idx3", "cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char img[4096];
        snprintf(img, sizeof img, "%s", fx(cases[i].images));
        zf_dataset *ds = (zf_dataset *)1;
        zf_status st = zf_dataset_load_idx(img, fx(cases[i].labels), &ds);
        cr_log_info("%s: %s", cases[i].images, zf_last_error());
        expect_error(st, ds, cases[i].named, cases[i].word);
    }
}

/* ---- Fashion-MNIST ---- */

static void expect_fashion(const zf_dataset *ds, const char *set, int64_t n)
{
    char name[64];
    cr_assert_eq(ds->n, n, "%s: %lld images", set, (long long)ds->n);
    cr_assert(ds->c == 1 && ds->h == 28 && ds->w == 28);
    snprintf(name, sizeof name, "fashion_%s_labels.npy", set);
    zf_tensor *lb = npy(name);
    cr_assert_eq(lb->size, n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(ds->labels[i], zf_tensor_i32(lb)[i], "%s: label %lld", set, (long long)i);
    snprintf(name, sizeof name, "fashion_%s_pick.npy", set);
    zf_tensor *pick = npy(name);
    snprintf(name, sizeof name, "fashion_%s_images.npy", set);
    zf_tensor *im = npy(name);
    for (int64_t k = 0; k < pick->size; k++) {
        int64_t i = zf_tensor_i32(pick)[k];
        for (int p = 0; p < 784; p++)
            cr_assert_eq(ds->pixels[i * 784 + p], zf_tensor_i32(im)[k * 784 + p],
                         "%s: image %lld pixel %d", set, (long long)i, p);
    }
    cr_assert_eq(ds->n_classes, 10);
    cr_expect_str_eq(ds->class_names[0], "T-shirt/top");
    cr_expect_str_eq(ds->class_names[9], "Ankle boot");
    snprintf(name, sizeof name, "fashion_%s_stats.npy", set);
    zf_tensor *st = npy(name);
    float mean[3], std[3];
    zf_dataset_stats(ds, mean, std);
    for (int c = 0; c < 3; c++) {
        cr_expect_float_eq(mean[c], zf_tensor_f32(st)[0], 1e-6, "%s mean %g vs numpy %g", set,
                           (double)mean[c], (double)zf_tensor_f32(st)[0]);
        cr_expect_float_eq(std[c], zf_tensor_f32(st)[1], 1e-6, "%s std %g vs numpy %g", set,
                           (double)std[c], (double)zf_tensor_f32(st)[1]);
    }
    zf_tensor_free(lb);
    zf_tensor_free(pick);
    zf_tensor_free(im);
    zf_tensor_free(st);
}

static int have_fashion(void)
{
    struct stat sb;
    return stat(ZF_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", &sb) == 0;
}

Test(dataset, fashion_mnist_matches_python_decoding)
{
    if (!have_fashion())
        cr_skip_test("no %s (Debian package dataset-fashion-mnist)", ZF_FASHION_MNIST_DIR);
    unsetenv("ZFVIZ_FASHION_MNIST");
    zf_dataset *ds = NULL;
    cr_assert_eq(zf_dataset_load_fashion_mnist(NULL, 1, &ds), ZF_OK, "%s", zf_last_error());
    expect_fashion(ds, "train", 60000);
    /* The mini nets' normalisation is the training set's statistics. */
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    float mean[3], std[3];
    zf_dataset_stats(ds, mean, std);
    cr_expect_float_eq(mean[0], net->pre.mean[0], 5e-5, "mean %g", (double)mean[0]);
    cr_expect_float_eq(std[0], net->pre.std[0], 5e-5, "std %g", (double)std[0]);
    zf_net_free(net);
    zf_dataset_free(ds);
    cr_assert_eq(zf_dataset_load_fashion_mnist(ZF_FASHION_MNIST_DIR, 0, &ds), ZF_OK, "%s",
                 zf_last_error());
    expect_fashion(ds, "t10k", 10000);
    zf_dataset_free(ds);
}

Test(dataset, fashion_mnist_folder_from_env_with_uncompressed_files)
{
    if (!have_fashion())
        cr_skip_test("no %s (Debian package dataset-fashion-mnist)", ZF_FASHION_MNIST_DIR);
    char dir[4096]; /* tu_ paths live in a small ring of buffers: keep a copy */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("fashion"));
    cr_assert_eq(tu_system("cd '%s' && for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do "
                           "gunzip -c " ZF_FASHION_MNIST_DIR "/$f.gz > $f || exit 1; done", dir), 0);
    setenv("ZFVIZ_FASHION_MNIST", dir, 1);
    zf_dataset *ds = NULL;
    cr_assert_eq(zf_dataset_load_fashion_mnist(NULL, 0, &ds), ZF_OK, "%s", zf_last_error());
    expect_fashion(ds, "t10k", 10000);
    zf_dataset_free(ds);
    zf_status st;
    /* No training files there: the error names the folder and the file it wanted. */
    ds = (zf_dataset *)1;
    st = zf_dataset_load_fashion_mnist(NULL, 1, &ds);
    expect_error(st, ds, dir, "train-images-idx3-ubyte");
}

/* ---- folders ---- */

Test(dataset, folder_classes_sorted_images_resized_as_torchvision)
{
    zf_dataset *ds = NULL;
    cr_assert_eq(zf_dataset_load_folder(fx("folder"), 24, &ds), ZF_OK, "%s", zf_last_error());
    zf_tensor *ex = npy("folder_expected.npy"), *lb = npy("folder_labels.npy");
    cr_assert_eq(ds->n, ex->shape[0], "%lld images, expected %lld (non-images and hidden files "
                 "are ignored)", (long long)ds->n, (long long)ex->shape[0]);
    cr_assert(ds->c == 3 && ds->h == 24 && ds->w == 24);
    /* Byte order: "Zebra" < "ant" < "bee". */
    cr_assert_eq(ds->n_classes, 3);
    cr_expect_str_eq(ds->class_names[0], "Zebra");
    cr_expect_str_eq(ds->class_names[1], "ant");
    cr_expect_str_eq(ds->class_names[2], "bee");
    for (int64_t i = 0; i < ds->n; i++)
        cr_expect_eq(ds->labels[i], zf_tensor_i32(lb)[i], "label of image %lld", (long long)i);
    /* PIL rounds to bytes between its two passes, we once at the end: one level apart at most. */
    int worst = 0;
    int64_t at = 0, off = 0;
    for (int64_t i = 0; i < ex->size; i++) {
        int d = abs((int)ds->pixels[i] - zf_tensor_i32(ex)[i]);
        off += d != 0;
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    cr_log_info("folder: %lld of %lld bytes differ from torchvision by 1", (long long)off,
                (long long)ex->size);
    cr_expect_leq(worst, 1, "max |diff| %d at byte %lld (image %lld)", worst, (long long)at,
                  (long long)(at / (24 * 24 * 3)));
    /* Against float64 resampling, unrounded: ours is that rounded to the nearest byte (either
     * way at a tie: the images have exact .5 values, which float32 sums put on either side). */
    zf_tensor *f64 = npy("folder_f64.npy");
    cr_assert_eq(f64->size, ex->size);
    double dworst = 0;
    for (int64_t i = 0; i < f64->size; i++) {
        double d = fabs(ds->pixels[i] - (double)zf_tensor_f32(f64)[i]);
        if (d > dworst) {
            dworst = d;
            at = i;
        }
    }
    cr_expect_leq(dworst, 0.5 + 1e-3, "byte %lld is %d, float64 resampling gives %.4f",
                  (long long)at, ds->pixels[at], (double)zf_tensor_f32(f64)[at]);
    zf_tensor_free(f64);
    zf_tensor_free(ex);
    zf_tensor_free(lb);
    zf_dataset_free(ds);
}

static int count_calls(void *ctx, int64_t done, int64_t total)
{
    int *calls = ctx;
    calls[0]++;
    calls[1] = (int)done;
    calls[2] = (int)total;
    return calls[3]; /* nonzero: stop */
}

Test(dataset, folder_progress_reports_and_can_stop)
{
    int calls[4] = {0, 0, 0, 0};
    zf_dataset *ds = NULL;
    cr_assert_eq(zf_dataset_load_folder_ex(fx("folder"), 8, count_calls, calls, &ds), ZF_OK);
    cr_expect(calls[0] >= 1 && calls[1] == 5 && calls[2] == 5, "calls %d, last %d of %d",
              calls[0], calls[1], calls[2]);
    zf_dataset_free(ds);
    calls[3] = 1;
    ds = (zf_dataset *)1;
    cr_expect_eq(zf_dataset_load_folder_ex(fx("folder"), 8, count_calls, calls, &ds),
                 ZF_ERR_INTERRUPTED);
    cr_expect_null(ds);
}

Test(dataset, folder_errors_name_the_file_or_folder)
{
    char root[4000];
    snprintf(root, sizeof root, "%s", tu_tmpdir("folder"));
    char dir[4096], path[4200];
    zf_dataset *ds = (zf_dataset *)1;
    zf_status st;
    /* A corrupt JPEG among good images. */
    snprintf(dir, sizeof dir, "%s/bad", root);
    cr_assert_eq(tu_system("mkdir -p '%s/a' '%s/b' && cp '%s' '%s/a/1.png' && cp '%s' '%s/b/2.png'",
                           dir, dir, fx("folder/Zebra/z1.png"), dir, fx("folder/bee/b1.png"), dir),
                 0);
    snprintf(path, sizeof path, "%s/b/broken.jpg", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite("\xff\xd8\xff\xe0 truncated", 1, 15, f);
    fclose(f);
    st = zf_dataset_load_folder(dir, 16, &ds);
    expect_error(st, ds, path, "JPEG");
    /* An empty folder, and one with files but no class folders. */
    snprintf(dir, sizeof dir, "%s/empty", root);
    cr_assert_eq(tu_system("mkdir -p '%s'", dir), 0);
    ds = (zf_dataset *)1;
    st = zf_dataset_load_folder(dir, 16, &ds);
    expect_error(st, ds, dir, "no class sub-folders");
    snprintf(dir, sizeof dir, "%s/flat", root);
    cr_assert_eq(tu_system("mkdir -p '%s' && cp '%s' '%s/x.png'", dir, fx("folder/bee/b1.png"),
                           dir), 0);
    ds = (zf_dataset *)1;
    st = zf_dataset_load_folder(dir, 16, &ds);
    expect_error(st, ds, dir, "no class sub-folders");
    /* A class folder without images. */
    snprintf(dir, sizeof dir, "%s/hollow", root);
    cr_assert_eq(tu_system("mkdir -p '%s/a' '%s/b' && cp '%s' '%s/a/1.png' && touch '%s/b/x.txt'",
                           dir, dir, fx("folder/bee/b1.png"), dir, dir), 0);
    snprintf(path, sizeof path, "%s/b", dir);
    ds = (zf_dataset *)1;
    st = zf_dataset_load_folder(dir, 16, &ds);
    expect_error(st, ds, path, "no JPEG or PNG");
    /* A missing folder and a bad size. */
    snprintf(dir, sizeof dir, "%s/missing", root);
    ds = (zf_dataset *)1;
    st = zf_dataset_load_folder(dir, 16, &ds);
    expect_error(st, ds, dir, "cannot open");
    ds = (zf_dataset *)1;
    st = zf_dataset_load_folder(fx("folder"), 0, &ds);
    expect_error(st, ds, "folder", "out of range");
}

/* ---- batches without augmentation ---- */

static zf_dataset *grey28(void)
{
    char img[4096];
    snprintf(img, sizeof img, "%s", fx("grey28-images.idx3.gz"));
    zf_dataset *ds = NULL;
    cr_assert_eq(zf_dataset_load_idx(img, fx("grey28-labels.idx1.gz"), &ds), ZF_OK, "%s",
                 zf_last_error());
    return ds;
}

Test(dataset, batch_for_a_mini_net_matches_torch_bilinear)
{
    zf_dataset *ds = grey28();
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    expect_batch_matches(ds, net, "batch_grey_mini.npy", 1e-5);
    zf_net_free(net);
    zf_dataset_free(ds);
}

Test(dataset, grey_data_into_a_bgr_net_repeats_the_plane)
{
    zf_dataset *ds = grey28();
    zf_net *net = plain_net(3, 40, 33, ZF_COLOR_BGR);
    net->pre.scale = 255.0f;
    float mean[3] = {10, 20, 30}, std[3] = {2, 3, 4};
    memcpy(net->pre.mean, mean, sizeof mean);
    memcpy(net->pre.std, std, sizeof std);
    expect_batch_matches(ds, net, "batch_grey_bgr.npy", 1e-5);
    zf_net_free(net);
    zf_dataset_free(ds);
}

Test(dataset, rgb_short_crop_window_shrinks_as_torch_antialias)
{
    zf_dataset *ds = rgb_fixture("rgb48.npy");
    zf_net *net = plain_net(3, 24, 24, ZF_COLOR_RGB);
    net->pre.resize = ZF_RESIZE_SHORT_CROP;
    net->pre.resize_short = 32;
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(net->pre.mean, mean, sizeof mean);
    memcpy(net->pre.std, std, sizeof std);
    expect_batch_matches(ds, net, "batch_rgb_down.npy", 1e-5);
    zf_net_free(net);
    zf_dataset_free(ds);
}

Test(dataset, rgb_data_into_a_grey_net_is_luma)
{
    zf_dataset *ds = rgb_fixture("rgb48.npy");
    zf_net *net = plain_net(1, 20, 20, ZF_COLOR_GREY);
    net->pre.mean[0] = 0.5f;
    net->pre.std[0] = 0.25f;
    expect_batch_matches(ds, net, "batch_rgb_grey.npy", 1e-5);
    zf_net_free(net);
    zf_dataset_free(ds);
}

Test(dataset, batch_refuses_bad_indices_and_mismatched_nets)
{
    zf_dataset *ds = grey28();
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    float *in = malloc(sizeof(float) * 2 * 112 * 112);
    int64_t idx[2] = {1, 6};
    cr_expect_eq(zf_dataset_batch(in, NULL, ds, idx, 2, net, NULL, 0), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "image 6"), "%s", zf_last_error());
    idx[1] = -1;
    cr_expect_eq(zf_dataset_batch(in, NULL, ds, idx, 2, net, NULL, 0), ZF_ERR_ARG);
    idx[1] = 0;
    net->in_c = 3; /* grey preprocessing makes one channel */
    cr_expect_eq(zf_dataset_batch(in, NULL, ds, idx, 2, net, NULL, 0), ZF_ERR_SHAPE);
    free(in);
    zf_net_free(net);
    zf_dataset_free(ds);
}

/* ---- augmentation ---- */

static float *run_batch(const zf_dataset *ds, const int64_t *idx, int n, const zf_net *net,
                        const zf_augment *aug, uint64_t seed)
{
    float *in = malloc(sizeof(float) * (size_t)n * (size_t)zf_net_in_size(net));
    cr_assert_eq(zf_dataset_batch(in, NULL, ds, idx, n, net, aug, seed), ZF_OK, "%s",
                 zf_last_error());
    return in;
}

Test(dataset, augmented_batches_depend_on_seed_and_image_only)
{
    zf_dataset *g = grey28();
    zf_dataset *ds = copies(g->pixels, 64, 1, 28, 28);
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("zfnet-mini", &net), ZF_OK);
    zf_augment aug = {.crop = 4, .flip = 1};
    int64_t fwd[64], rev[64];
    for (int i = 0; i < 64; i++) {
        fwd[i] = i;
        rev[i] = 63 - i;
    }
    size_t per = 112 * 112;
    omp_set_num_threads(2);
    float *a = run_batch(ds, fwd, 64, net, &aug, 42);
    omp_set_num_threads(1);
    float *b = run_batch(ds, rev, 64, net, &aug, 42);
    omp_set_num_threads(2);
    float *c = run_batch(ds, fwd, 64, net, &aug, 43);
    float *d = run_batch(ds, fwd + 10, 5, net, &aug, 42); /* images 10..14 alone */
    int differ = 0;
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(memcmp(a + i * per, b + (63 - i) * per, per * sizeof(float)), 0,
                     "image %d differs with the batch reversed on one thread", i);
        differ += memcmp(a + i * per, c + i * per, per * sizeof(float)) != 0;
    }
    cr_assert_eq(memcmp(a + 10 * per, d, 5 * per * sizeof(float)), 0,
                 "images 10..14 differ in a batch of their own");
    /* 81 offsets x 2 flips: another seed leaves about 1 in 162 images unchanged. */
    cr_expect_geq(differ, 56, "only %d of 64 images change with the seed", differ);
    free(a);
    free(b);
    free(c);
    free(d);
    zf_net_free(net);
    zf_dataset_free(ds);
    zf_dataset_free(g);
}

Test(dataset, flip_mirrors_the_unaugmented_image)
{
    zf_dataset *g = grey28();
    enum { N = 200 };
    zf_dataset *ds = copies(g->pixels + 784 * 2, N, 1, 28, 28);
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    int64_t idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = i;
    zf_augment aug = {.flip = 1};
    float *plain = run_batch(ds, idx, 1, net, NULL, 7);
    float *flipped = run_batch(ds, idx, N, net, &aug, 7);
    int n_flip = 0;
    for (int i = 0; i < N; i++) {
        const float *o = flipped + (size_t)i * 112 * 112;
        int same = 1, mirror = 1;
        for (int y = 0; y < 112; y++)
            for (int x = 0; x < 112; x++) {
                same &= o[y * 112 + x] == plain[y * 112 + x];
                mirror &= o[y * 112 + x] == plain[y * 112 + 111 - x];
            }
        cr_assert(same || mirror, "image %d is neither the original nor its mirror", i);
        cr_assert(!(same && mirror), "test image is symmetric");
        n_flip += mirror;
    }
    cr_expect(n_flip > 60 && n_flip < 140, "%d of %d flipped (binomial, p = 1/2)", n_flip, N);
    free(plain);
    free(flipped);
    zf_net_free(net);
    zf_dataset_free(ds);
    zf_dataset_free(g);
}

/* Grey 28x28 for a mini net: the window is the whole image, zero-padded by `crop`. One bright pixel
 * at (10, 12) on grey 100 shows where each window sat: its bilinear blob in the 4x upsampled
 * output is centred at 4 * (p - offset) + 1.5. */
Test(dataset, padded_crop_offsets_cover_minus_to_plus_crop)
{
    enum { N = 2000, B = 250, S = 28, O = 112 };
    uint8_t px[S * S];
    memset(px, 100, sizeof px);
    px[10 * S + 12] = 255;
    zf_dataset *ds = copies(px, N, 1, S, S);
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    zf_augment aug = {.crop = 4};
    float bg = (100.0f / 255.0f - net->pre.mean[0]) / net->pre.std[0];
    float black = -net->pre.mean[0] / net->pre.std[0];
    int seen[9][9] = {{0}};
    for (int b0 = 0; b0 < N; b0 += B) {
        int64_t idx[B];
        for (int i = 0; i < B; i++)
            idx[i] = b0 + i;
        float *in = run_batch(ds, idx, B, net, &aug, 99);
        for (int i = 0; i < B; i++) {
            const float *o = in + (size_t)i * O * O;
            double sy = 0, sx = 0, sw = 0;
            for (int y = 0; y < O; y++)
                for (int x = 0; x < O; x++) {
                    double v = o[y * O + x] - bg;
                    if (v > 1e-3) {
                        sy += v * y;
                        sx += v * x;
                        sw += v;
                    }
                }
            cr_assert_gt(sw, 0, "image %d: the bright pixel is gone", b0 + i);
            int oy = 10 - (int)lround((sy / sw - 1.5) / 4.0);
            int ox = 12 - (int)lround((sx / sw - 1.5) / 4.0);
            cr_assert(oy >= -4 && oy <= 4 && ox >= -4 && ox <= 4, "offset (%d, %d)", oy, ox);
            seen[oy + 4][ox + 4]++;
            /* Output row 0 / column 0 sample window row / column 0 alone: padding is black. */
            float want_y = oy < 0 ? black : bg, want_x = ox < 0 ? black : bg;
            cr_assert_float_eq(o[O / 2 * O + 0], want_x, 1e-5, "image %d, offset x %d: left edge",
                               b0 + i, ox);
            cr_assert_float_eq(o[0 * O + O / 2 + 30], want_y, 1e-5, "image %d, offset y %d: top "
                               "edge", b0 + i, oy);
        }
        free(in);
    }
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++)
            cr_expect_gt(seen[y][x], 0, "offset (%d, %d) never drawn in %d images", y - 4, x - 4, N);
    zf_net_free(net);
    zf_dataset_free(ds);
}

/* RGB stored at 32 for a net of 24 with resize_short 32: a 24 px window anywhere inside the image
 * (offsets 0..8), resized 24 -> 24 (identity), so the bright pixel moves by the offset exactly. */
Test(dataset, rgb_crop_window_moves_over_the_whole_stored_image)
{
    enum { N = 2000, S = 32, O = 24 };
    uint8_t px[S * S * 3];
    memset(px, 100, sizeof px);
    memset(px + (16 * S + 16) * 3, 255, 3);
    zf_dataset *ds = copies(px, N, 3, S, S);
    zf_net *net = plain_net(3, O, O, ZF_COLOR_RGB);
    net->pre.resize = ZF_RESIZE_SHORT_CROP;
    net->pre.resize_short = 32;
    zf_augment aug = {.crop = 1};
    int64_t *idx = malloc(sizeof *idx * N);
    for (int i = 0; i < N; i++)
        idx[i] = i;
    float *in = run_batch(ds, idx, N, net, &aug, 5);
    int seen[9][9] = {{0}};
    for (int i = 0; i < N; i++) {
        const float *o = in + (size_t)i * 3 * O * O;
        int found = -1;
        for (int p = 0; p < O * O; p++) {
            if (fabsf(o[p] - 1.0f) < 1e-6f)
                found = found < 0 ? p : -2;
            else
                cr_assert_float_eq(o[p], 100.0f / 255.0f, 1e-6, "image %d pixel %d", i, p);
        }
        cr_assert_geq(found, 0, "image %d: the bright pixel is not there once", i);
        seen[16 - found / O][16 - found % O]++;
    }
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++)
            cr_expect_gt(seen[y][x], 0, "offset (%d, %d) never drawn", y, x);
    free(in);
    free(idx);
    zf_net_free(net);
    zf_dataset_free(ds);
}

/* ---- PCA colour noise and statistics ---- */

Test(dataset, pca_and_stats_match_numpy)
{
    zf_dataset *ds = rgb_fixture("pca_pixels.npy");
    zf_tensor *wv = npy("pca_eigval.npy"), *vv = npy("pca_eigvec.npy"), *st = npy("pca_stats.npy");
    float eigval[3], eigvec[3][3];
    cr_assert_eq(zf_dataset_pca(ds, eigval, eigvec), ZF_OK, "%s", zf_last_error());
    for (int k = 0; k < 3; k++) {
        cr_expect_float_eq(eigval[k], zf_tensor_f32(wv)[k], 1e-6 * zf_tensor_f32(wv)[0],
                           "eigenvalue %d: %g vs numpy %g", k, (double)eigval[k],
                           (double)zf_tensor_f32(wv)[k]);
        double dot = 0, big = 0;
        int sign_ok = 1;
        for (int c = 0; c < 3; c++) {
            dot += eigvec[c][k] * zf_tensor_f32(vv)[c * 3 + k];
            if (fabs(eigvec[c][k]) > fabs(big))
                big = eigvec[c][k];
        }
        sign_ok = big > 0;
        cr_expect_gt(fabs(dot), 1 - 1e-5, "eigenvector %d: |dot| with numpy's %g", k, dot);
        cr_expect(sign_ok, "eigenvector %d: largest component negative", k);
    }
    float mean[3], std[3];
    zf_dataset_stats(ds, mean, std);
    for (int c = 0; c < 3; c++) {
        cr_expect_float_eq(mean[c], zf_tensor_f32(st)[c], 1e-6, "mean[%d]", c);
        cr_expect_float_eq(std[c], zf_tensor_f32(st)[3 + c], 1e-6, "std[%d]", c);
    }
    zf_dataset *g = grey28();
    cr_expect_eq(zf_dataset_pca(g, eigval, eigvec), ZF_ERR_UNSUPPORTED);
    zf_dataset_free(g);
    zf_tensor_free(wv);
    zf_tensor_free(vv);
    zf_tensor_free(st);
    zf_dataset_free(ds);
}

/* Each image is shifted by one colour per image, V (alpha .* lambda), with alpha ~ N(0, 0.1):
 * recover alpha from the shift and check its distribution. */
Test(dataset, pca_noise_is_a_per_image_colour_shift_along_the_eigenvectors)
{
    zf_dataset *src = rgb_fixture("rgb48.npy");
    enum { N = 400, S = 48 };
    zf_dataset *ds = copies(src->pixels, N, 3, S, S);
    /* Any orthonormal basis will do; a rotation by 1 rad about (1, 2, 3) is far from symmetric,
     * so using rows for columns would show (a dataset's PCA basis often is nearly symmetric). */
    zf_augment aug = {.pca_std = 0.1f, .eigval = {0.2f, 0.05f, 0.01f}};
    double ax[3] = {1 / sqrt(14.0), 2 / sqrt(14.0), 3 / sqrt(14.0)}, co = cos(1.0), si = sin(1.0);
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 3; k++) {
            double cross = c == k ? 0 : ((k - c + 3) % 3 == 1 ? -1 : 1) * ax[3 - c - k];
            aug.eigvec[c][k] = (float)((c == k ? co : 0) + (1 - co) * ax[c] * ax[k] + si * cross);
        }
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < 3; l++) {
            double dot = 0;
            for (int c = 0; c < 3; c++)
                dot += aug.eigvec[c][k] * aug.eigvec[c][l];
            cr_assert_float_eq(dot, k == l, 1e-6, "test basis not orthonormal");
        }
    zf_net *net = plain_net(3, S, S, ZF_COLOR_RGB); /* exact, mean 0, std 1: p/255 + noise */
    int64_t *idx = malloc(sizeof *idx * N);
    for (int i = 0; i < N; i++)
        idx[i] = i;
    float *plain = run_batch(ds, idx, 1, net, NULL, 3);
    float *noisy = run_batch(ds, idx, N, net, &aug, 3);
    double sum[3] = {0}, sq[3] = {0};
    size_t plane = S * S;
    for (int i = 0; i < N; i++) {
        double shift[3];
        for (int c = 0; c < 3; c++) {
            const float *o = noisy + ((size_t)i * 3 + c) * plane, *p = plain + c * plane;
            shift[c] = o[0] - p[0];
            for (size_t q = 0; q < plane; q++)
                cr_assert_float_eq(o[q] - p[q], shift[c], 1e-5, "image %d channel %d: the "
                                   "shift is not constant", i, c);
        }
        for (int k = 0; k < 3; k++) {
            double proj = 0;
            for (int c = 0; c < 3; c++)
                proj += aug.eigvec[c][k] * shift[c];
            double alpha = proj / aug.eigval[k];
            sum[k] += alpha;
            sq[k] += alpha * alpha;
        }
    }
    for (int k = 0; k < 3; k++) {
        double m = sum[k] / N, sd = sqrt(sq[k] / N - m * m);
        cr_log_info("alpha %d: mean %.4f std %.4f", k, m, sd);
        cr_expect(fabs(m) < 0.02 && sd > 0.085 && sd < 0.115, "alpha %d: mean %g std %g, "
                  "expected 0 and 0.1", k, m, sd);
    }
    /* Grey data has no colour to shift. */
    zf_dataset *g = grey28();
    zf_net *mini;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &mini), ZF_OK);
    float *a = run_batch(g, idx, 6, mini, NULL, 3), *b = run_batch(g, idx, 6, mini, &aug, 3);
    cr_expect_eq(memcmp(a, b, sizeof(float) * 6 * 112 * 112), 0, "PCA noise changed grey data");
    free(a);
    free(b);
    zf_net_free(mini);
    zf_dataset_free(g);
    free(plain);
    free(noisy);
    free(idx);
    zf_net_free(net);
    zf_dataset_free(ds);
    zf_dataset_free(src);
}

/* ---- shuffles and slices ---- */

Test(dataset, shuffle_is_a_reproducible_uniform_permutation)
{
    enum { N = 1000 };
    int64_t a[N], b[N], c[N];
    zf_dataset_shuffle(a, N, 11, 3);
    zf_dataset_shuffle(b, N, 11, 3);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same seed and epoch, different order");
    char seen[N] = {0};
    for (int i = 0; i < N; i++) {
        cr_assert(a[i] >= 0 && a[i] < N && !seen[a[i]], "not a permutation at %d", i);
        seen[a[i]] = 1;
    }
    zf_dataset_shuffle(c, N, 11, 4);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == c[i];
    cr_expect_lt(same, 10, "epochs 3 and 4 agree at %d places", same);
    zf_dataset_shuffle(c, N, 12, 3);
    same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == c[i];
    cr_expect_lt(same, 10, "seeds 11 and 12 agree at %d places", same);
    /* Over 24000 epochs every element lands in every place of a 6-shuffle about 4000 times. */
    enum { E = 24000 };
    int where[6][6] = {{0}};
    for (int e = 0; e < E; e++) {
        int64_t p[6];
        zf_dataset_shuffle(p, 6, 5, e);
        for (int i = 0; i < 6; i++)
            where[p[i]][i]++;
    }
    for (int v = 0; v < 6; v++)
        for (int i = 0; i < 6; i++)
            cr_expect(abs(where[v][i] - E / 6) < 300, "element %d at place %d %d times of %d", v,
                      i, where[v][i], E);
}

Test(dataset, slice_copies_rows_and_refuses_out_of_range)
{
    char img[4096];
    snprintf(img, sizeof img, "%s", fx("small-images.idx3"));
    zf_dataset *ds = NULL, *s = NULL;
    cr_assert_eq(zf_dataset_load_idx(img, fx("small-labels.idx1"), &ds), ZF_OK);
    cr_assert_eq(zf_dataset_slice(ds, 3, 10, &s), ZF_OK, "%s", zf_last_error());
    zf_tensor *im = npy("small_images.npy"), *lb = npy("small_labels.npy");
    cr_assert(s->n == 10 && s->h == 5 && s->w == 7 && s->n_classes == 7);
    for (int i = 0; i < 10 * 35; i++)
        cr_assert_eq(s->pixels[i], zf_tensor_i32(im)[3 * 35 + i], "pixel %d", i);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(s->labels[i], zf_tensor_i32(lb)[3 + i]);
    cr_expect_str_eq(s->class_names[6], "6");
    cr_expect(strstr(s->source, "[3:13]"), "%s", s->source);
    zf_dataset_free(s);
    s = (zf_dataset *)1;
    cr_expect_eq(zf_dataset_slice(ds, 4, 10, &s), ZF_ERR_ARG);
    cr_expect_null(s);
    cr_expect_eq(zf_dataset_slice(ds, -1, 2, &s), ZF_ERR_ARG);
    cr_expect_eq(zf_dataset_slice(ds, 0, 0, &s), ZF_ERR_ARG);
    zf_tensor_free(im);
    zf_tensor_free(lb);
    zf_dataset_free(ds);
}
