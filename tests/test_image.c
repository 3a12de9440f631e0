/* Images: decoding matches PIL for every PNG colour type and JPEG flavour, damaged files fail
 * without crashing, and resize + crop + normalisation matches PIL/torchvision (within PIL's own
 * 8-bit rounding) and a float64 resampler with PIL's weights (tightly). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/io.h"

static const char *fx(const char *name) { return tu_fixturef("image/%s", name); }

/* Decodes `path` and returns the largest |ours - PIL| over all pixels (PIL's pixels are in
 * PATH.rgb.npy, (h, w, 3)); fails on a size mismatch. */
static int max_diff_vs_pil(const char *path, const char *ref)
{
    zf_image *img = NULL;
    cr_assert_eq(zf_image_load(path, &img), ZF_OK, "%s", zf_last_error());
    char rp[4096];
    snprintf(rp, sizeof rp, "%s.rgb.npy", ref);
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(rp, &t), ZF_OK, "%s", zf_last_error());
    cr_assert(t->ndim == 3 && t->shape[0] == img->h && t->shape[1] == img->w && t->shape[2] == 3,
              "%s: decoded %d x %d, PIL gives %lld x %lld", path, img->w, img->h,
              (long long)t->shape[1], (long long)t->shape[0]);
    int worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < (size_t)t->size; i++) {
        int d = abs((int)img->rgb[i] - zf_tensor_i32(t)[i]);
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    if (worst)
        cr_log_info("%s: max |diff| %d at byte %zu (y %zu, x %zu, c %zu)", path, worst, at,
                    at / 3 / (size_t)img->w, at / 3 % (size_t)img->w, at % 3);
    zf_tensor_free(t);
    zf_image_free(img);
    return worst;
}

Test(image, png_of_every_colour_type_decodes_exactly_as_pil)
{
    const char *names[] = {"rgb.png", "grey.png", "palette.png", "palette_trns.png", "rgba.png",
                           "grey_alpha.png", "bilevel.png", "rgb16.png", "grey16.png", "grey4.png",
                           "adam7.png"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *p = fx(names[i]);
        cr_expect_eq(max_diff_vs_pil(p, p), 0, "%s differs from the reference pixels", names[i]);
    }
}

Test(image, jpeg_decodes_as_pil_with_the_same_libjpeg)
{
    const char *names[] = {"baseline.jpg", "progressive.jpg", "grey.jpg", "s444.jpg", "cmyk.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *p = fx(names[i]);
        /* PIL decodes with the same libjpeg-turbo and default (islow DCT, fancy upsampling)
         * settings: the pixels agree exactly; allow 1 for another IDCT. */
        cr_expect_leq(max_diff_vs_pil(p, p), 1, "%s differs from PIL", names[i]);
    }
    cr_expect_leq(max_diff_vs_pil(tu_src("assets/sample.jpg"), fx("sample.jpg")), 1,
                  "assets/sample.jpg differs from PIL");
}

static void expect_decode_error(const unsigned char *b, size_t n, const char *name, const char *word)
{
    zf_image *img = (zf_image *)1;
    zf_status st = zf_image_decode(b, n, name, &img);
    cr_assert_neq(st, ZF_OK, "%s: %zu bytes decoded without error", name, n);
    cr_assert_null(img, "%s: output not cleared", name);
    cr_assert(strstr(zf_last_error(), name), "message does not name the file: %s", zf_last_error());
    if (word)
        cr_assert(strstr(zf_last_error(), word), "message lacks '%s': %s", word, zf_last_error());
}

Test(image, truncated_jpeg_is_an_error_at_every_cut)
{
    const char *files[] = {"baseline.jpg", "progressive.jpg", "grey.jpg"};
    for (int f = 0; f < 3; f++) {
        size_t len;
        unsigned char *b = tu_slurp(fx(files[f]), &len);
        for (size_t cut = 0; cut < len; cut += cut < 16 ? 1 : 37) {
            char name[64];
            snprintf(name, sizeof name, "%s[:%zu]", files[f], cut);
            expect_decode_error(b, cut, name, NULL);
        }
        /* Only the end-of-image marker missing: libjpeg would pad with grey and warn. */
        expect_decode_error(b, len - 2, files[f], "Premature end");
        free(b);
    }
    size_t len;
    unsigned char *b = tu_slurp(tu_src("assets/sample.jpg"), &len);
    expect_decode_error(b, len / 2, "sample.jpg", "JPEG");
    free(b);
}

Test(image, truncated_or_corrupt_png_is_an_error)
{
    size_t len;
    unsigned char *b = tu_slurp(fx("rgb.png"), &len);
    for (size_t cut = 0; cut < len; cut += cut < 40 ? 1 : 53) {
        char name[64];
        snprintf(name, sizeof name, "rgb.png[:%zu]", cut);
        expect_decode_error(b, cut, name, NULL);
    }
    expect_decode_error(b, len - 12, "rgb.png without IEND", "PNG");
    /* A flipped bit inside the first IDAT: zlib or the chunk CRC catches it. */
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    unsigned char *idat = memmem(c, len, "IDAT", 4);
    cr_assert(idat);
    idat[4 + 20] ^= 0x10;
    expect_decode_error(c, len, "flipped.png", "PNG");
    /* A changed height in IHDR: only the chunk CRC tells. */
    memcpy(c, b, len);
    c[16 + 7] ^= 0x01;
    expect_decode_error(c, len, "ihdr.png", "CRC");
    free(c);
    free(b);
    b = tu_slurp(fx("corrupt_zlib.png"), &len);
    expect_decode_error(b, len, "corrupt_zlib.png", "PNG");
    free(b);
}

/* Damage that a decoder may or may not notice: what it must never do is crash or read out of
 * bounds (the sanitizer build checks that); whatever it returns must be a sane image. */
Test(image, random_damage_never_crashes)
{
    const char *files[] = {"baseline.jpg", "progressive.jpg", "rgb.png", "adam7.png", "palette.png"};
    uint64_t s = 12345;
    for (int f = 0; f < 5; f++) {
        size_t len;
        unsigned char *b = tu_slurp(fx(files[f]), &len);
        unsigned char *c = malloc(len);
        int failed = 0;
        for (int trial = 0; trial < 60; trial++) {
            memcpy(c, b, len);
            for (int k = 0; k < 3; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                size_t pos = 2 + (size_t)(s >> 33) % (len - 2);
                c[pos] ^= (unsigned char)(1u << ((s >> 20) & 7));
            }
            zf_image *img = NULL;
            if (zf_image_decode(c, len, files[f], &img) == ZF_OK) {
                cr_assert(img && img->w > 0 && img->h > 0 && img->rgb);
                zf_image_free(img);
            } else {
                failed++;
                cr_assert_null(img);
            }
        }
        cr_log_info("%s: %d of 60 damaged copies refused", files[f], failed);
        free(c);
        free(b);
    }
}

Test(image, unknown_format_is_a_clear_error)
{
    expect_decode_error((const unsigned char *)"GIF89a\x01\x00\x01\x00", 10, "x.gif",
                        "not a JPEG or PNG");
    expect_decode_error((const unsigned char *)"", 0, "empty.jpg", "not a JPEG or PNG");
    zf_image *img;
    cr_assert_eq(zf_image_load("/nonexistent/x.jpg", &img), ZF_ERR_IO);
    cr_assert(strstr(zf_last_error(), "/nonexistent/x.jpg"));
}

Test(image, save_png_round_trips_and_reports_bad_paths)
{
    zf_image *img = zf_image_new(37, 23);
    cr_assert(img);
    for (size_t i = 0; i < (size_t)37 * 23 * 3; i++)
        img->rgb[i] = (uint8_t)(i * 97 + (i >> 5));
    const char *dir = tu_tmpdir("image_png");
    char path[4096];
    snprintf(path, sizeof path, "%s/out.png", dir);
    cr_assert_eq(zf_image_save_png(path, img), ZF_OK, "%s", zf_last_error());
    zf_image *back = NULL;
    cr_assert_eq(zf_image_load(path, &back), ZF_OK, "%s", zf_last_error());
    cr_assert(back->w == 37 && back->h == 23);
    cr_assert_eq(memcmp(img->rgb, back->rgb, (size_t)37 * 23 * 3), 0);
    snprintf(path, sizeof path, "%s/missing/out.png", dir);
    cr_assert_eq(zf_image_save_png(path, img), ZF_ERR_IO);
    cr_assert(strstr(zf_last_error(), path));
    zf_image_free(img);
    zf_image_free(back);
    zf_image_free(NULL);
    cr_assert_null(zf_image_new(0, 5));
}

/* The table of tests/fixtures/gen_image.py's CASES. */
typedef struct {
    const char *name, *source;
    zf_resize_mode mode;
    int short_side, oh, ow;
    zf_preproc pre;
} resize_case;

#define IMAGENET_PRE(mode, s) {ZF_COLOR_RGB, 1.0f, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, mode, s}
#define CAFFE_PRE(mode, s) {ZF_COLOR_BGR, 255.0f, {123.68f, 116.779f, 103.939f}, {1, 1, 1}, mode, s}
#define PLAIN_PRE(mode, s) {ZF_COLOR_RGB, 1.0f, {0, 0, 0}, {1, 1, 1}, mode, s}

static const resize_case cases[] = {
    {"short_land", "resize_src.png", ZF_RESIZE_SHORT_CROP, 40, 33, 35, IMAGENET_PRE(ZF_RESIZE_SHORT_CROP, 40)},
    {"exact_down", "resize_src.png", ZF_RESIZE_EXACT, 0, 31, 45, CAFFE_PRE(ZF_RESIZE_EXACT, 0)},
    {"exact_up", "resize_src.png", ZF_RESIZE_EXACT, 0, 100, 150, PLAIN_PRE(ZF_RESIZE_EXACT, 0)},
    {"short_port", "resize_port.png", ZF_RESIZE_SHORT_CROP, 50, 41, 45, IMAGENET_PRE(ZF_RESIZE_SHORT_CROP, 50)},
    {"sample_alexnet", NULL, ZF_RESIZE_SHORT_CROP, 256, 224, 224, IMAGENET_PRE(ZF_RESIZE_SHORT_CROP, 256)},
    {"sample_caffe", NULL, ZF_RESIZE_SHORT_CROP, 256, 227, 227, CAFFE_PRE(ZF_RESIZE_SHORT_CROP, 256)},
};

/* Largest difference in 8-bit pixel levels: (ours - ref) * std / scale * 255. */
static double max_level_diff(const float *ours, const zf_tensor *ref, const resize_case *c, size_t *where)
{
    double worst = 0;
    size_t plane = (size_t)c->oh * c->ow;
    for (size_t i = 0; i < (size_t)ref->size; i++) {
        int j = (int)(i / plane);
        int rgb = c->pre.order == ZF_COLOR_BGR ? 2 - j : j;
        double d = fabs((double)ours[i] - zf_tensor_f32(ref)[i]) * c->pre.std[rgb] / c->pre.scale * 255.0;
        if (!(d <= worst)) {
            worst = d;
            *where = i;
        }
    }
    return worst;
}

Test(image, resize_crop_normalise_matches_pil_and_torchvision)
{
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const resize_case *c = &cases[k];
        zf_image *img = NULL;
        const char *src = c->source ? fx(c->source) : tu_src("assets/sample.jpg");
        cr_assert_eq(zf_image_load(src, &img), ZF_OK, "%s", zf_last_error());
        float *out = malloc(sizeof(float) * 3 * (size_t)c->oh * c->ow);
        cr_assert_eq(zf_image_to_input(out, img, &c->pre, c->oh, c->ow), ZF_OK, "%s: %s", c->name,
                     zf_last_error());
        char rel[128];
        zf_tensor *pil = NULL, *f64 = NULL;
        snprintf(rel, sizeof rel, "%s.pil.npy", c->name);
        cr_assert_eq(zf_npy_read(fx(rel), &pil), ZF_OK, "%s", zf_last_error());
        snprintf(rel, sizeof rel, "%s.f64.npy", c->name);
        cr_assert_eq(zf_npy_read(fx(rel), &f64), ZF_OK, "%s", zf_last_error());
        cr_assert(pil->ndim == 3 && pil->shape[0] == 3 && pil->shape[1] == c->oh && pil->shape[2] == c->ow,
                  "%s: reference shape", c->name);
        size_t at = 0;
        /* PIL rounds to 8 bits after each pass: up to half a level each, plus its final one. */
        double d = max_level_diff(out, pil, c, &at);
        cr_log_info("%s: max |ours - PIL| = %.3f levels at %zu", c->name, d, at);
        cr_expect_leq(d, 1.01, "%s: %.3f levels from PIL at index %zu (ours %g, PIL %g)", c->name, d,
                      at, (double)out[at], (double)zf_tensor_f32(pil)[at]);
        /* Without the intermediate rounding the same weights agree to float precision. */
        d = max_level_diff(out, f64, c, &at);
        cr_log_info("%s: max |ours - float64| = %.2e levels at %zu", c->name, d, at);
        cr_expect_leq(d, 2e-3, "%s: %.2e levels from the float64 resampler at index %zu (ours %.7g, "
                      "ref %.7g)", c->name, d, at, (double)out[at], (double)zf_tensor_f32(f64)[at]);
        zf_tensor_free(pil);
        zf_tensor_free(f64);
        free(out);
        zf_image_free(img);
    }
}

Test(image, to_input_refuses_a_crop_larger_than_the_resized_image)
{
    zf_image *img = zf_image_new(20, 10);
    zf_preproc pre = IMAGENET_PRE(ZF_RESIZE_SHORT_CROP, 16);
    float out[3 * 17 * 17];
    cr_assert_eq(zf_image_to_input(out, img, &pre, 17, 17), ZF_ERR_ARG);
    zf_image_free(img);
}

static zf_net *input_net(void)
{
    zf_net *net = zf_net_new("alexnet", 3, 224, 224);
    zf_preproc pre = IMAGENET_PRE(ZF_RESIZE_SHORT_CROP, 256);
    net->pre = pre;
    return net;
}

Test(image, input_load_takes_npy_of_chw_or_nchw_and_names_wrong_shapes)
{
    zf_net *net = input_net();
    const char *dir = tu_tmpdir("image_input");
    char path[4096];
    size_t n = 3 * 224 * 224;
    float *x = malloc(sizeof(float) * 2 * n);
    tu_fill_uniform(x, 2 * n, 3, -2, 2);
    zf_tensor *t = NULL;

    snprintf(path, sizeof path, "%s/chw.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, x, 3, (int64_t[]){3, 224, 224}), ZF_OK);
    cr_assert_eq(zf_input_load(path, net, &t), ZF_OK, "%s", zf_last_error());
    cr_assert(t->ndim == 4 && t->shape[0] == 1 && t->shape[1] == 3 && t->shape[2] == 224 && t->shape[3] == 224);
    cr_assert_eq(memcmp(t->data, x, n * 4), 0);
    zf_tensor_free(t);

    snprintf(path, sizeof path, "%s/nchw.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, x, 4, (int64_t[]){2, 3, 224, 224}), ZF_OK);
    cr_assert_eq(zf_input_load(path, net, &t), ZF_OK, "%s", zf_last_error());
    cr_assert(t->ndim == 4 && t->shape[0] == 2);
    cr_assert_eq(memcmp(t->data, x, 2 * n * 4), 0);
    zf_tensor_free(t);

    snprintf(path, sizeof path, "%s/wrong.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, x, 4, (int64_t[]){1, 3, 227, 221}), ZF_OK);
    cr_assert_eq(zf_input_load(path, net, &t), ZF_ERR_SHAPE);
    cr_assert_null(t);
    const char *msg = zf_last_error();
    cr_assert(strstr(msg, path) && strstr(msg, "1x3x227x221") && strstr(msg, "3 x 224 x 224"), "%s", msg);

    snprintf(path, sizeof path, "%s/ints.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_I32, x, 3, (int64_t[]){3, 224, 224}), ZF_OK);
    cr_assert_neq(zf_input_load(path, net, &t), ZF_OK);
    cr_assert(strstr(zf_last_error(), path) && strstr(zf_last_error(), "integers"), "%s", zf_last_error());

    snprintf(path, sizeof path, "%s/text.txt", dir);
    tu_write_file(path, "hello, world\n", 13);
    cr_assert_eq(zf_input_load(path, net, &t), ZF_ERR_FORMAT);
    cr_assert(strstr(zf_last_error(), "not a .npy, JPEG or PNG"), "%s", zf_last_error());
    free(x);
    zf_net_free(net);
}

Test(image, input_load_preprocesses_an_image_as_torchvision)
{
    zf_net *net = input_net();
    zf_tensor *t = NULL;
    cr_assert_eq(zf_input_load(tu_src("assets/sample.jpg"), net, &t), ZF_OK, "%s", zf_last_error());
    cr_assert(t->ndim == 4 && t->shape[0] == 1 && t->shape[1] == 3 && t->shape[2] == 224 && t->shape[3] == 224);
    zf_tensor *ref = NULL;
    cr_assert_eq(zf_npy_read(fx("sample_alexnet.pil.npy"), &ref), ZF_OK);
    size_t at = 0;
    double d = max_level_diff(zf_tensor_f32(t), ref, &cases[4], &at);
    cr_expect_leq(d, 1.01, "%.3f levels from torchvision at %zu", d, at);
    zf_tensor_free(ref);
    zf_tensor_free(t);
    zf_net_free(net);
}
