/* JPEG (libjpeg-turbo) and PNG (libpng) images, the resize + centre crop + normalisation that
 * turns one into a net's input (PIL's antialiased bilinear, as torchvision uses), and the
 * loader of inputs given as .npy or image files. */
#include "zf/alloc.h"
#include "zf/file.h"
#include "zf/input.h"
#include "zf/io.h"
#include "image_internal.h"
#include "util_internal.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h> /* needs stdio.h first */
#include <jerror.h>
#include <png.h>

/* 2^28 pixels (768 MiB of RGB): larger files are refused before anything is allocated. */
#define ZF_IMAGE_MAX_PIXELS ((int64_t)1 << 28)
/* A file read whole into memory before decoding: bound it (compressed images are far smaller). */
#define ZF_IMAGE_MAX_FILE ((int64_t)1 << 30)

zf_image *zf_image_new(int w, int h)
{
    if (w <= 0 || h <= 0 || (int64_t)w * h > ZF_IMAGE_MAX_PIXELS) {
        zf_error(ZF_ERR_ARG, "image of %d x %d pixels (1 to 2^28 pixels supported)", w, h);
        return NULL;
    }
    zf_image *img = zf_calloc(1, sizeof *img);
    if (img)
        img->rgb = zf_calloc((size_t)w * h, 3);
    if (!img || !img->rgb) {
        free(img);
        zf_error(ZF_ERR_NOMEM, "out of memory for a %d x %d image", w, h);
        return NULL;
    }
    img->w = w;
    img->h = h;
    return img;
}

void zf_image_free(zf_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    free(img);
}

/* ---- JPEG ---- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_fail(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* libjpeg only warns about missing or corrupt entropy-coded data and then fills the rest of the
 * image with grey: such an image is not the one that was encoded, so those warnings fail the
 * decode. Warnings about metadata that does not change the pixels are ignored. */
static void jpeg_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return; /* trace messages */
    switch (cinfo->err->msg_code) {
    case JWRN_ADOBE_XFORM:
    case JWRN_JFIF_MAJOR:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_BOGUS_ICC:
        cinfo->err->num_warnings++;
        return;
    default:
        jpeg_fail(cinfo);
    }
}

static zf_status decode_jpeg(const uint8_t *bytes, size_t len, const char *name, zf_image **out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    zf_image *volatile img = NULL;
    JSAMPLE *volatile row = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_fail;
    err.pub.emit_message = jpeg_message;
    err.msg[0] = '\0';
    if (setjmp(err.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        zf_image_free(img);
        free(row);
        return zf_error(ZF_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", name, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    if ((int64_t)cinfo.image_width * cinfo.image_height > ZF_IMAGE_MAX_PIXELS) {
        jpeg_destroy_decompress(&cinfo);
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: JPEG of %u x %u pixels is too large", name,
                        cinfo.image_width, cinfo.image_height);
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    img = zf_image_new(w, h);
    row = zf_malloc((size_t)w * 4);
    if (!img || !row) {
        jpeg_destroy_decompress(&cinfo);
        zf_image_free(img);
        free(row);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory for a %d x %d image", name, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = img->rgb + (size_t)cinfo.output_scanline * w * 3;
        if (!cmyk) {
            JSAMPROW r = dst;
            jpeg_read_scanlines(&cinfo, &r, 1);
            continue;
        }
        JSAMPROW r = row;
        jpeg_read_scanlines(&cinfo, &r, 1);
        /* Adobe (and PIL) write CMYK inverted; RGB as PIL computes it from true CMYK:
         * R = (255 - K) - (255 - K) * C / 255, rounded the way PIL's MULDIV255 does. */
        for (int x = 0; x < w; x++) {
            int c[4];
            for (int k = 0; k < 4; k++)
                c[k] = cinfo.saw_Adobe_marker ? 255 - row[4 * x + k] : row[4 * x + k];
            int nk = 255 - c[3];
            for (int k = 0; k < 3; k++) {
                int t = c[k] * nk + 128;
                dst[3 * x + k] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    *out = img;
    return ZF_OK;
}

/* ---- PNG ---- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    char msg[256];
} png_ctx;

static void png_fail(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_ignore(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos)
        png_error(png, "file ends early");
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
}

static zf_status decode_png(const uint8_t *bytes, size_t len, const char *name, zf_image **out)
{
    png_ctx ctx = {bytes, len, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_fail,
                                             png_warning_ignore);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return zf_error(ZF_ERR_NOMEM, "%s: cannot start the PNG decoder", name);
    }
    zf_image *volatile img = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        zf_image_free(img);
        free(rows);
        return zf_error(ZF_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", name, ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((int64_t)w * h > ZF_IMAGE_MAX_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: PNG of %u x %u pixels is too large", name, w, h);
    }
    /* Palette and low-bit grey to 8 bits, 16 bits to their high byte (as PIL reads 16-bit RGB),
     * grey to RGB, alpha (and tRNS, which expand turns into alpha) dropped. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3 || png_get_channels(png, info) != 3) {
        png_destroy_read_struct(&png, &info, NULL);
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: PNG colour type %d does not convert to RGB", name,
                        png_get_color_type(png, info));
    }
    img = zf_image_new((int)w, (int)h);
    rows = img ? zf_malloc(sizeof(png_bytep) * h) : NULL;
    if (!rows) {
        png_destroy_read_struct(&png, &info, NULL);
        zf_image_free(img);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory for a %u x %u image", name, w, h);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = img->rgb + (size_t)y * w * 3;
    png_read_image(png, rows);
    /* Reads the chunks after the image to IEND, so a file cut short after its pixels is still
     * refused (the checksums of what follows are checked too). */
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *out = img;
    return ZF_OK;
}

zf_status zf_image_decode(const uint8_t *bytes, size_t len, const char *name, zf_image **out)
{
    *out = NULL;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return decode_jpeg(bytes, len, name, out);
    if (len >= 8 && !memcmp(bytes, png_sig, 8))
        return decode_png(bytes, len, name, out);
    return zf_error(ZF_ERR_FORMAT, "%s: not a JPEG or PNG image (unknown magic bytes)", name);
}

/* The whole file in memory (a regular file of at most ZF_IMAGE_MAX_FILE bytes); *len gets its
 * size. */
static zf_status read_file(const char *path, uint8_t **out, size_t *len)
{
    return zf_input_read(path, "an image file", 0, (size_t)ZF_IMAGE_MAX_FILE, out, len);
}

zf_status zf_image_load(const char *path, zf_image **out)
{
    *out = NULL;
    uint8_t *buf;
    size_t len = 0;
    zf_status st = read_file(path, &buf, &len);
    if (st)
        return st;
    st = zf_image_decode(buf, len, path, out);
    free(buf);
    return st;
}

zf_status zf_image_encode_png(const zf_image *img, void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!img || img->w <= 0 || img->h <= 0 || !img->rgb)
        return zf_error(ZF_ERR_ARG, "PNG encoding: empty image");
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->w;
    pi.height = (png_uint_32)img->h;
    pi.format = PNG_FORMAT_RGB;
    png_alloc_size_t len = 0;
    /* libpng's simplified writer: sized first, then written into the buffer. */
    if (!png_image_write_to_memory(&pi, NULL, &len, 0, img->rgb, 0, NULL))
        return zf_error(ZF_ERR_FORMAT, "PNG encoding (%dx%d): %s", img->w, img->h, pi.message);
    void *buf = zf_malloc(len);
    if (!buf)
        return zf_error(ZF_ERR_NOMEM, "PNG encoding (%dx%d): out of memory", img->w, img->h);
    if (!png_image_write_to_memory(&pi, buf, &len, 0, img->rgb, 0, NULL)) {
        free(buf);
        return zf_error(ZF_ERR_FORMAT, "PNG encoding (%dx%d): %s", img->w, img->h, pi.message);
    }
    *out = buf;
    *out_len = len;
    return ZF_OK;
}

zf_status zf_image_save_png(const char *path, const zf_image *img)
{
    if (!img || img->w <= 0 || img->h <= 0 || !img->rgb)
        return zf_error(ZF_ERR_ARG, "%s: no image to save", path);
    zf_status st = zf_file_check(path);
    void *png = NULL, *marked = NULL;
    size_t len = 0, mlen = 0;
    if (!st)
        st = zf_image_encode_png(img, &png, &len);
    if (!st)
        st = zf_png_mark(png, len, &marked, &mlen);
    if (st)
        zf_error_prefix(st, "%s: ", path);
    else
        st = zf_file_save(path, marked, mlen, 0);
    free(png);
    free(marked);
    return st;
}

/* ---- resampling ----
 * PIL's Image.resize(BILINEAR) (what torchvision's Resize does to PIL images): each output pixel
 * is a weighted mean of the input pixels under a triangle filter centred on it, widened by the
 * scale factor when shrinking so every input pixel contributes (antialiasing). The weights are
 * PIL's (precompute_coeffs in Resample.c); PIL then rounds to 8 bits after each of its two
 * passes and this keeps floats, so results differ from PIL's by at most about one level. */

/* Leaves t empty, so that freeing it again (as zf_taps_make's callers do on its failure) is
 * harmless. */
void zf_taps_free(zf_taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
    t->first = t->count = NULL;
    t->w = NULL;
}

zf_status zf_taps_make(zf_taps *t, int in_size, int out_size, int start, int n)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the triangle's support is 1 */
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = zf_malloc(sizeof(int) * (size_t)n);
    t->count = zf_malloc(sizeof(int) * (size_t)n);
    t->w = zf_calloc((size_t)n * t->ksize, sizeof(float));
    if (!t->first || !t->count || !t->w) {
        zf_taps_free(t);
        return zf_error(ZF_ERR_NOMEM, "out of memory for resampling weights");
    }
    double *k = zf_malloc(sizeof(double) * (size_t)t->ksize);
    if (!k) {
        zf_taps_free(t);
        return zf_error(ZF_ERR_NOMEM, "out of memory for resampling weights");
    }
    for (int i = 0; i < n; i++) {
        int xx = start + i;
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        if (xmax > t->ksize)
            xmax = t->ksize;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            double d = fabs((x + xmin - center + 0.5) * ss);
            k[x] = d < 1.0 ? 1.0 - d : 0.0;
            ww += k[x];
        }
        for (int x = 0; x < xmax; x++)
            t->w[(size_t)i * t->ksize + x] = (float)(ww != 0.0 ? k[x] / ww : 0.0);
        t->first[i] = xmin;
        t->count[i] = xmax;
    }
    free(k);
    return ZF_OK;
}

zf_status zf_image_to_input(float *out, const zf_image *img, const zf_preproc *pre, int out_h,
                            int out_w)
{
    if (!img || img->w <= 0 || img->h <= 0 || out_h <= 0 || out_w <= 0)
        return zf_error(ZF_ERR_ARG, "image to input: bad sizes (%d x %d image to %d x %d)",
                        img ? img->w : 0, img ? img->h : 0, out_w, out_h);
    for (int c = 0; c < 3; c++)
        if (!(pre->std[c] != 0.0f))
            return zf_error(ZF_ERR_ARG, "image to input: std[%d] is %g", c, (double)pre->std[c]);
    int rw = out_w, rh = out_h, top = 0, left = 0;
    if (pre->resize == ZF_RESIZE_SHORT_CROP) {
        /* torchvision Resize(S): short side S, long side int(S * long / short); then
         * CenterCrop with offsets int(round((size - crop) / 2)). */
        int64_t s = pre->resize_short;
        if (img->w <= img->h) {
            rw = (int)s;
            rh = (int)(s * img->h / img->w);
        } else {
            rh = (int)s;
            rw = (int)(s * img->w / img->h);
        }
        if (rw < out_w || rh < out_h)
            return zf_error(ZF_ERR_ARG, "image to input: resize to %d x %d leaves less than the "
                            "%d x %d crop (short side %d)", rw, rh, out_w, out_h,
                            pre->resize_short);
        top = zf_half_round_even(rh - out_h);
        left = zf_half_round_even(rw - out_w);
    } else if (pre->resize != ZF_RESIZE_EXACT) {
        return zf_error(ZF_ERR_ARG, "image to input: unknown resize mode %d", (int)pre->resize);
    }
    zf_taps hx = {0}, vy = {0};
    zf_status st = zf_taps_make(&hx, img->w, rw, left, out_w);
    if (!st)
        st = zf_taps_make(&vy, img->h, rh, top, out_h);
    if (st) {
        zf_taps_free(&hx);
        return st;
    }
    /* Horizontal pass over the input rows the vertical taps reach, then vertical. */
    int y0 = vy.first[0], y1 = vy.first[0];
    for (int i = 0; i < out_h; i++) {
        if (vy.first[i] < y0)
            y0 = vy.first[i];
        if (vy.first[i] + vy.count[i] > y1)
            y1 = vy.first[i] + vy.count[i];
    }
    float *tmp = zf_malloc(sizeof(float) * 3 * (size_t)out_w * (size_t)(y1 - y0 > 0 ? y1 - y0 : 1));
    if (!tmp) {
        zf_taps_free(&hx);
        zf_taps_free(&vy);
        return zf_error(ZF_ERR_NOMEM, "image to input: out of memory");
    }
    for (int y = y0; y < y1; y++) {
        const uint8_t *src = img->rgb + (size_t)y * img->w * 3;
        float *dst = tmp + (size_t)(y - y0) * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            const float *w = hx.w + (size_t)x * hx.ksize;
            const uint8_t *p = src + (size_t)hx.first[x] * 3;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < hx.count[x]; k++) {
                r += w[k] * p[3 * k];
                g += w[k] * p[3 * k + 1];
                b += w[k] * p[3 * k + 2];
            }
            dst[3 * x] = r;
            dst[3 * x + 1] = g;
            dst[3 * x + 2] = b;
        }
    }
    /* Output channel j holds RGB channel src_c[j]; value (p/255*scale - mean)/std = p*a + b. */
    int src_c[3] = {0, 1, 2};
    if (pre->order == ZF_COLOR_BGR) {
        src_c[0] = 2;
        src_c[2] = 0;
    }
    float a[3], b[3];
    for (int c = 0; c < 3; c++) {
        a[c] = pre->scale / 255.0f / pre->std[c];
        b[c] = -pre->mean[c] / pre->std[c];
    }
    size_t plane = (size_t)out_h * out_w;
    /* Grey nets take one plane: ITU-R 601 luma of the resized RGB, as PIL's "L" conversion. */
    int grey = pre->order == ZF_COLOR_GREY;
    for (int y = 0; y < out_h; y++) {
        const float *w = vy.w + (size_t)y * vy.ksize;
        const float *rows = tmp + (size_t)(vy.first[y] - y0) * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            float v[3] = {0, 0, 0};
            for (int k = 0; k < vy.count[y]; k++) {
                const float *p = rows + ((size_t)k * out_w + x) * 3;
                v[0] += w[k] * p[0];
                v[1] += w[k] * p[1];
                v[2] += w[k] * p[2];
            }
            if (grey) {
                float l = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
                out[(size_t)y * out_w + x] = l * a[0] + b[0];
                continue;
            }
            for (int j = 0; j < 3; j++) {
                int c = src_c[j];
                out[j * plane + (size_t)y * out_w + x] = v[c] * a[c] + b[c];
            }
        }
    }
    free(tmp);
    zf_taps_free(&hx);
    zf_taps_free(&vy);
    return ZF_OK;
}

/* ---- inputs ---- */

static zf_status load_npy_input(const char *path, const zf_net *net, zf_tensor **out)
{
    zf_tensor *t;
    zf_status st = zf_npy_read(path, &t);
    if (st)
        return st;
    char sh[96];
    zf_tensor_shape_str(t, sh, sizeof sh);
    if (t->dtype != ZF_DTYPE_F32) {
        zf_tensor_free(t);
        return zf_error(ZF_ERR_FORMAT, "%s: input .npy holds integers (%s); a normalised float "
                        "image is expected (or give the image file itself)", path, sh);
    }
    int lead = t->ndim - 3;
    int ok = (t->ndim == 3 || t->ndim == 4) && (t->ndim == 3 || t->shape[0] >= 1) &&
             t->shape[lead] == net->in_c && t->shape[lead + 1] == net->in_h &&
             t->shape[lead + 2] == net->in_w;
    if (!ok) {
        zf_tensor_free(t);
        return zf_error(ZF_ERR_SHAPE, "%s: input of shape %s does not fit %s: expected N x %d x "
                        "%d x %d or %d x %d x %d", path, sh, net->arch, net->in_c, net->in_h,
                        net->in_w, net->in_c, net->in_h, net->in_w);
    }
    if (t->ndim == 3) {
        t->ndim = 4;
        memmove(t->shape + 1, t->shape, 3 * sizeof t->shape[0]);
        t->shape[0] = 1;
    }
    *out = t;
    return ZF_OK;
}

/* An input tensor (n, c, h, w) must be finite: a NaN would pass the ReLUs as 0 and give
 * normal-looking probabilities. The message names the file and where the first bad value is. */
static zf_status check_finite_input(const char *path, const zf_tensor *t)
{
    size_t where = 0, n = (size_t)t->size;
    if (!zf_values_check_finite(zf_tensor_f32(t), n, path, &where))
        return ZF_OK;
    float v = zf_tensor_f32(t)[where];
    size_t hw = (size_t)t->shape[2] * t->shape[3], chw = hw * t->shape[1];
    return zf_error(ZF_ERR_FORMAT, "%s: input holds %s at image %zu, channel %zu, y %zu, x %zu: the "
                    "net needs finite values", path, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf",
                    where / chw, where % chw / hw, where % hw / t->shape[3], where % t->shape[3]);
}

zf_status zf_input_load(const char *path, const zf_net *net, zf_tensor **out)
{
    *out = NULL;
    zf_status cs = zf_input_check(path, "an image or .npy file", 0, NULL);
    if (cs)
        return cs;
    uint8_t magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got >= 6 && !memcmp(magic, "\x93NUMPY", 6)) {
        zf_status st = load_npy_input(path, net, out);
        if (!st && (st = check_finite_input(path, *out))) {
            zf_tensor_free(*out);
            *out = NULL;
        }
        return st;
    }
    int jpeg = got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff;
    int png = got >= 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8);
    if (!jpeg && !png)
        return zf_error(ZF_ERR_FORMAT, "%s: not a .npy, JPEG or PNG file", path);
    if (net->in_c != (net->pre.order == ZF_COLOR_GREY ? 1 : 3))
        return zf_error(ZF_ERR_SHAPE, "%s: %s has %d input channels but its preprocessing makes %s "
                        "(set order=grey or order=rgb with --preproc)", path, net->arch, net->in_c,
                        net->pre.order == ZF_COLOR_GREY ? "1" : "3");
    zf_image *img;
    zf_status st = zf_image_load(path, &img);
    if (st)
        return st;
    zf_tensor *t = zf_tensor_new4(1, net->in_c, net->in_h, net->in_w);
    if (!t) {
        zf_image_free(img);
        return zf_error_prefix(ZF_ERR_NOMEM, "%s: ", path);
    }
    st = zf_image_to_input(zf_tensor_f32(t), img, &net->pre, net->in_h, net->in_w);
    zf_image_free(img);
    if (st)
        st = zf_error_prefix(st, "%s: ", path);
    else
        st = check_finite_input(path, t); /* a preprocessing dividing by a tiny std */
    if (st) {
        zf_tensor_free(t);
        return st;
    }
    *out = t;
    return ZF_OK;
}
