/* The input limits of docs/robustness.md, each tried at the limit (the limit does not refuse the
 * file; something later does, or it loads) and one past it (refused before anything the size of
 * the claim is allocated, with one line naming the file). Large files are sparse: nothing is read
 * from them past their header. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h> /* needs stdio.h first */
#include <zlib.h>

#include "testutil.h"
#include "zf/input.h"
#include "zf/alloc.h"
#include "zf/io.h"
#include "zf/model.h"
#include "zf/net.h"

/* The limits as docs/robustness.md states them. */
#define IMAGE_MAX_PIXELS ((int64_t)1 << 28)
#define IMAGE_MAX_FILE ((int64_t)1 << 30)
#define NPY_MAX_DATA ((int64_t)1 << 32)
#define ST_MAX_HEADER 100000000
#define LIST_MAX_LINE 4096
#define LIST_MAX_BYTES ((int64_t)1 << 30)

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", tu_tmpdir("limits"), name);
    return p;
}

/* Writes bytes, then makes the file `size` bytes long (a sparse tail) when size > n. */
static void write_file(const char *path, const void *p, size_t n, int64_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot create %s", path);
    cr_assert(fwrite(p, 1, n, f) == n);
    fclose(f);
    if (size > (int64_t)n)
        cr_assert(truncate(path, (off_t)size) == 0);
}

/* The last error is one line that names the file and contains `what`. */
static void assert_refusal(zf_status st, const char *path, const char *what)
{
    const char *m = zf_last_error();
    cr_assert(st != ZF_OK, "%s: accepted", path);
    cr_assert(strstr(m, path), "message does not name %s: %s", path, m);
    cr_assert(!strchr(m, '\n'), "message is more than one line: %s", m);
    cr_assert(strstr(m, what), "expected '%s' in: %s", what, m);
}

/* ---- images ---- */

/* A 16 x 16 baseline JPEG whose frame header then claims w x h pixels: the scan data runs out
 * long before that many are decoded. */
static void write_jpeg_claiming(const char *path, unsigned w, unsigned h)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = 16;
    c.image_height = 16;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char row[16 * 3];
    memset(row, 128, sizeof row);
    while (c.next_scanline < 16) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len && !sof; i++)
        if (out[i] == 0xff && out[i + 1] == 0xc0)
            sof = i;
    cr_assert(sof, "no SOF0 marker in the encoded JPEG");
    out[sof + 5] = (unsigned char)(h >> 8);
    out[sof + 6] = (unsigned char)h;
    out[sof + 7] = (unsigned char)(w >> 8);
    out[sof + 8] = (unsigned char)w;
    write_file(path, out, len, 0);
    free(out);
}

static size_t png_chunk(unsigned char *p, const char *type, const unsigned char *data, uint32_t n)
{
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
    memcpy(p + 4, type, 4);
    if (n)
        memcpy(p + 8, data, n);
    uint32_t crc = (uint32_t)crc32(0, p + 4, 4 + n);
    p[8 + n] = (unsigned char)(crc >> 24);
    p[9 + n] = (unsigned char)(crc >> 16);
    p[10 + n] = (unsigned char)(crc >> 8);
    p[11 + n] = (unsigned char)crc;
    return 12 + n;
}

/* An RGB PNG whose IHDR claims w x h, with one short IDAT (a few compressed zero bytes). */
static void write_png_claiming(const char *path, uint32_t w, uint32_t h)
{
    unsigned char buf[512], ihdr[13] = {0}, zeros[64] = {0}, z[128];
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(buf, sig, 8);
    size_t n = 8;
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (unsigned char)(w >> (24 - 8 * i));
        ihdr[4 + i] = (unsigned char)(h >> (24 - 8 * i));
    }
    ihdr[8] = 8; /* bit depth */
    ihdr[9] = 2; /* RGB */
    n += png_chunk(buf + n, "IHDR", ihdr, 13);
    uLongf zn = sizeof z;
    cr_assert(compress(z, &zn, zeros, sizeof zeros) == Z_OK);
    n += png_chunk(buf + n, "IDAT", z, (uint32_t)zn);
    n += png_chunk(buf + n, "IEND", NULL, 0);
    write_file(path, buf, n, 0);
}

Test(limits, jpeg_at_max_pixels_is_decoded_and_fails_only_on_its_data)
{
    const char *path = tmp_path("at.jpg");
    write_jpeg_claiming(path, 16384, 16384); /* 2^28 pixels */
    zf_image *img = NULL;
    zf_status st = zf_image_load(path, &img);
    assert_refusal(st, path, "corrupt or truncated JPEG");
}

Test(limits, jpeg_one_row_past_max_pixels_is_refused)
{
    const char *path = tmp_path("past.jpg");
    write_jpeg_claiming(path, 16384, 16385);
    zf_image *img = NULL;
    assert_refusal(zf_image_load(path, &img), path, "16384 x 16385 pixels is too large");
    cr_assert_null(img);
}

Test(limits, png_at_max_pixels_is_decoded_and_fails_only_on_its_data)
{
    const char *path = tmp_path("at.png");
    write_png_claiming(path, 16384, 16384);
    zf_image *img = NULL;
    assert_refusal(zf_image_load(path, &img), path, "corrupt or truncated PNG");
}

Test(limits, png_one_row_past_max_pixels_is_refused)
{
    /* one pixel past is 17 x 15790321 pixels, wider than libpng itself allows: one row past */
    const char *path = tmp_path("past.png");
    write_png_claiming(path, 16384, 16385);
    zf_image *img = NULL;
    assert_refusal(zf_image_load(path, &img), path, "PNG of 16384 x 16385 pixels is too large");
    cr_assert_null(img);
}

Test(limits, image_file_one_byte_past_max_size_is_refused_unread)
{
    const char *path = tmp_path("huge.jpg");
    static const unsigned char soi[3] = {0xff, 0xd8, 0xff};
    write_file(path, soi, 3, IMAGE_MAX_FILE + 1);
    zf_image *img = NULL;
    assert_refusal(zf_image_load(path, &img), path, "1073741825 bytes is more than 1073741824");
    unlink(path);
}

/* ---- .npy ---- */

/* A version 1.0 .npy header for dtype descr and 1-D length n, padded to 128 bytes. */
static size_t npy_header(unsigned char *buf, const char *descr, long long n)
{
    char dict[118 + 1];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld,), }",
                     descr, n);
    cr_assert(k > 0 && k < 117);
    memset(dict + k, ' ', (size_t)(117 - k));
    dict[117] = '\n';
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = 118;
    buf[9] = 0;
    memcpy(buf + 10, dict, 118);
    return 128;
}

Test(limits, npy_claiming_max_data_passes_the_limit_and_is_checked_against_the_file)
{
    const char *path = tmp_path("at.npy");
    unsigned char h[128];
    size_t hn = npy_header(h, "<f4", (long long)(NPY_MAX_DATA / 4));
    write_file(path, h, hn, (int64_t)hn + NPY_MAX_DATA - 1); /* one byte short */
    zf_tensor *t = NULL;
    assert_refusal(zf_npy_read(path, &t), path, "truncated .npy");
    cr_assert_null(t);
    unlink(path);
}

Test(limits, npy_claiming_one_element_past_max_data_is_refused_before_the_file_size)
{
    const char *path = tmp_path("past.npy");
    unsigned char h[128];
    size_t hn = npy_header(h, "<f4", (long long)(NPY_MAX_DATA / 4 + 1));
    write_file(path, h, hn, (int64_t)hn + NPY_MAX_DATA + 4); /* the file holds all it claims */
    zf_tensor *t = NULL;
    assert_refusal(zf_npy_read(path, &t), path, "4294967300 bytes of data: more than the 4294967296");
    unlink(path);
}

Test(limits, npy_claiming_more_than_the_file_holds_is_refused)
{
    const char *path = tmp_path("short.npy");
    unsigned char buf[128 + 36];
    size_t hn = npy_header(buf, "<f4", 10);
    memset(buf + hn, 0, 36); /* 9 floats for a header of 10 */
    write_file(path, buf, hn + 36, 0);
    zf_tensor *t = NULL;
    assert_refusal(zf_npy_read(path, &t), path, "(40 bytes of data) but the file holds 36");
}

/* ---- safetensors ---- */

static void write_st(const char *path, uint64_t hn, const char *json, int64_t size)
{
    unsigned char buf[512];
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hn >> (8 * i));
    size_t jn = strlen(json);
    memcpy(buf + 8, json, jn);
    write_file(path, buf, 8 + jn, size);
}

Test(limits, safetensors_header_at_max_length_is_parsed)
{
    const char *path = tmp_path("at.safetensors");
    write_st(path, ST_MAX_HEADER, "{", 8 + ST_MAX_HEADER);
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    /* the header is read and parsed: a JSON error, not the length */
    assert_refusal(zf_net_load_safetensors(net, path), path, "bad safetensors header");
    zf_net_free(net);
    unlink(path);
}

Test(limits, safetensors_header_one_past_max_length_is_refused_unread)
{
    const char *path = tmp_path("past.safetensors");
    write_st(path, ST_MAX_HEADER + 1, "{", 8 + ST_MAX_HEADER + 1);
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    assert_refusal(zf_net_load_safetensors(net, path), path,
                   "header length 100000001 is more than the 100000000");
    zf_net_free(net);
    unlink(path);
}

Test(limits, safetensors_tensor_claiming_more_than_the_file_is_refused)
{
    const char *path = tmp_path("claim.safetensors");
    const char *json = "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[1000000000],"
                       "\"data_offsets\":[0,4000000000]}}";
    write_st(path, strlen(json), json, 0);
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    assert_refusal(zf_net_load_safetensors(net, path), path, "within the 0 bytes of data");
    zf_net_free(net);
}

/* torchvision's AlexNet with `classes` outputs: its parameters counted here from the layer sizes
 * (conv 3-64 k11, 64-192 k5, 192-384, 384-256, 256-256 k3; fc 9216-4096-4096-classes). */
static int64_t alexnet_params(int64_t classes)
{
    const int64_t conv[5][3] = {{3, 64, 11}, {64, 192, 5}, {192, 384, 3}, {384, 256, 3}, {256, 256, 3}};
    const int64_t fc[3][2] = {{9216, 4096}, {4096, 4096}, {4096, classes}};
    int64_t n = 0;
    for (int i = 0; i < 5; i++)
        n += conv[i][0] * conv[i][1] * conv[i][2] * conv[i][2] + conv[i][1];
    for (int i = 0; i < 3; i++)
        n += fc[i][0] * fc[i][1] + fc[i][1];
    return n;
}

/* A whole-model file: metadata naming alexnet with `classes` outputs, no tensors, `size` bytes
 * long (a sparse tail). */
static void write_whole_model(const char *path, int classes, int64_t size)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"__metadata__\":{\"arch\":\"alexnet\",\"zfviz.in_c\":\"3\",\"zfviz.classes\":\"%d\"}}",
             classes);
    write_st(path, strlen(json), json, size);
}

Test(limits, whole_model_claiming_more_parameters_than_its_file_is_refused_before_allocating)
{
    const char *path = tmp_path("huge.zfmodel");
    write_whole_model(path, 100000, 0); /* about 100 bytes for 466.7M parameters */
    char want[64];
    snprintf(want, sizeof want, "%lld parameters, more than the", (long long)alexnet_params(100000));
    zf_alloc_set_limit((size_t)64 << 20); /* nothing the size of the claim may be allocated */
    zf_net *net = NULL;
    zf_status st = zf_model_load(path, &net);
    int hit = zf_alloc_fault_hit();
    zf_alloc_set_limit(0);
    assert_refusal(st, path, want);
    cr_assert(!hit, "an allocation of more than 64 MiB was tried before the refusal");
    cr_assert_null(net);
    unlink(path);
}

Test(limits, whole_model_file_at_two_bytes_a_parameter_passes_the_bound)
{
    const char *path = tmp_path("at.zfmodel");
    int64_t p = alexnet_params(1000);
    char past[64];
    snprintf(past, sizeof past, "%lld parameters, more than the %lld", (long long)p, (long long)p - 1);
    zf_net *net = NULL;
    write_whole_model(path, 1000, 2 * p - 1); /* one byte short: F16 could not hold them */
    assert_refusal(zf_model_load(path, &net), path, past);
    write_whole_model(path, 1000, 2 * p); /* the net is built; its tensors are then missing */
    zf_status st = zf_model_load(path, &net);
    cr_assert(st != ZF_OK);
    cr_assert_null(strstr(zf_last_error(), "more than the"), "refused by the bound: %s", zf_last_error());
    cr_assert_null(net);
    unlink(path);
}

/* ---- lists ---- */

/* A list whose first line is line_len bytes (a comment: '#' and then 'a's), then "b.jpg". */
static zf_status read_list_with_line(const char *path, size_t line_len, char ***lines, int64_t *n)
{
    char *b = malloc(line_len + 7);
    memset(b, 'a', line_len);
    b[0] = '#';
    memcpy(b + line_len, "\nb.jpg\n", 7);
    write_file(path, b, line_len + 7, 0);
    free(b);
    return zf_list_read(path, NULL, lines, n);
}

Test(limits, list_line_at_max_length_is_read)
{
    const char *path = tmp_path("at.txt");
    char **lines = NULL;
    int64_t n = 0;
    cr_assert_eq(read_list_with_line(path, LIST_MAX_LINE, &lines, &n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(n, 1);
    cr_assert_str_eq(lines[0], "b.jpg");
    zf_paths_free(lines, n);
}

Test(limits, list_line_one_past_max_length_is_refused)
{
    const char *path = tmp_path("past.txt");
    char **lines = NULL;
    int64_t n = 0;
    assert_refusal(read_list_with_line(path, LIST_MAX_LINE + 1, &lines, &n), path,
                   ":1: line longer than 4096 bytes");
}

Test(limits, list_at_max_bytes_passes_the_size_check)
{
    const char *path = tmp_path("atbytes.txt");
    write_file(path, "a.jpg\n", 6, LIST_MAX_BYTES);
    char **lines = NULL;
    int64_t n = 0;
    /* the NULs of the sparse tail make one long second line: refused there, not by size */
    assert_refusal(zf_list_read(path, NULL, &lines, &n), path, ":2: line longer than");
    unlink(path);
}

Test(limits, list_one_byte_past_max_bytes_is_refused_unread)
{
    const char *path = tmp_path("pastbytes.txt");
    write_file(path, "a.jpg\n", 6, LIST_MAX_BYTES + 1);
    char **lines = NULL;
    int64_t n = 0;
    assert_refusal(zf_list_read(path, NULL, &lines, &n), path, "1073741825 bytes, more than a list");
    unlink(path);
}
