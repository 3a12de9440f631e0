/* The .npy reader and writer against numpy: files numpy wrote (every converted dtype, format
 * versions 1-3) must read as the values numpy itself converts them to, our files must be byte
 * for byte numpy's, and malformed or truncated files must fail with the file named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/io.h"

/* Reads fixture NAME.npy and checks shape and every element against NAME.bin, bit for bit. */
static void check_fixture(const char *name, zf_dtype dtype, int ndim, const int64_t *shape)
{
    const char *path = tu_fixturef("npy/%s.npy", name);
    zf_tensor *t = NULL;
    zf_status st = zf_npy_read(path, &t);
    cr_assert_eq(st, ZF_OK, "%s: %s", name, zf_last_error());
    cr_assert_eq(t->dtype, dtype, "%s: dtype %d", name, t->dtype);
    cr_assert_eq(t->ndim, ndim, "%s: ndim %d, expected %d", name, t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        cr_assert_eq(t->shape[i], shape[i], "%s: dim %d is %lld, expected %lld", name, i,
                     (long long)t->shape[i], (long long)shape[i]);
    size_t len;
    unsigned char *want = tu_slurp(tu_fixturef("npy/%s.bin", name), &len);
    cr_assert_eq(len, (size_t)t->size * 4, "%s: %zu reference bytes for %lld values", name, len,
                 (long long)t->size);
    for (int64_t i = 0; i < t->size; i++) {
        uint32_t a, b;
        memcpy(&a, (unsigned char *)t->data + 4 * i, 4);
        memcpy(&b, want + 4 * i, 4);
        cr_assert_eq(a, b, "%s: element %lld is 0x%08x, numpy gives 0x%08x", name, (long long)i, a, b);
    }
    free(want);
    zf_tensor_free(t);
}

static void expect_refused(const char *path, const char *word)
{
    zf_tensor *t = (zf_tensor *)1;
    zf_status st = zf_npy_read(path, &t);
    cr_assert_neq(st, ZF_OK, "%s was accepted", path);
    cr_assert_null(t, "%s: output not cleared on error", path);
    const char *msg = zf_last_error();
    cr_assert(strstr(msg, path), "message does not name the file: %s", msg);
    if (word)
        cr_assert(strstr(msg, word), "message lacks '%s': %s", word, msg);
}

/* t written to dir/name and read back: the same dtype, shape and bytes (4-byte elements). */
static void expect_round_trip(const char *dir, const char *name, const zf_tensor *t)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(zf_npy_write(path, t), ZF_OK, "%s", zf_last_error());
    zf_tensor *g = NULL;
    cr_assert_eq(zf_npy_read(path, &g), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(g->dtype, t->dtype, "%s", name);
    cr_assert_eq(g->ndim, t->ndim, "%s", name);
    for (int i = 0; i < t->ndim; i++)
        cr_assert_eq(g->shape[i], t->shape[i], "%s: dimension %d", name, i);
    for (int64_t i = 0; i < t->size; i++)
        cr_assert_eq(((const uint32_t *)g->data)[i], ((const uint32_t *)t->data)[i], "%s: element %lld differs",
                     name, (long long)i);
    zf_tensor_free(g);
}

Test(npy, float32_and_int32_round_trip_bit_exact)
{
    const char *dir = tu_tmpdir("npy_rt");
    int64_t fs[3] = {3, 5, 7};
    zf_tensor *f = zf_tensor_new(ZF_DTYPE_F32, 3, fs);
    cr_assert(f->shape[0] == 3 && f->shape[1] == 5 && f->shape[2] == 7);
    tu_fill_uniform(zf_tensor_f32(f), (size_t)f->size, 5, -1e6f, 1e6f);
    zf_tensor_f32(f)[0] = -0.0f;
    expect_round_trip(dir, "f.npy", f);

    int64_t is[1] = {11};
    zf_tensor *a = zf_tensor_new(ZF_DTYPE_I32, 1, is);
    cr_assert(a->size == 11);
    for (int i = 0; i < 11; i++)
        zf_tensor_i32(a)[i] = (int32_t)(i * 390451573u) ^ (i & 1 ? INT32_MIN : 0);
    expect_round_trip(dir, "i.npy", a);
    zf_tensor_free(f);
    zf_tensor_free(a);
}

static void check_same_bytes(const char *mine, const char *fixture)
{
    size_t n1, n2;
    unsigned char *a = tu_slurp(mine, &n1), *b = tu_slurp(tu_fixture(fixture), &n2);
    /* zfviz's mark, a Python comment numpy ignores, takes the end of numpy's header padding */
    for (size_t i = 0; i + 9 <= n1 && i < 4096; i++)
        if (!memcmp(a + i, " # zfviz\n", 9)) {
            memset(a + i, ' ', 8);
            break;
        }
    cr_assert_eq(n1, n2, "%s: %zu bytes, numpy wrote %zu", fixture, n1, n2);
    for (size_t i = 0; i < n1; i++)
        cr_assert_eq(a[i], b[i], "%s: byte %zu is 0x%02x, numpy wrote 0x%02x", fixture, i, a[i], b[i]);
    free(a);
    free(b);
}

Test(npy, writer_produces_numpys_exact_bytes)
{
    const char *dir = tu_tmpdir("npy_bytes");
    char path[4096];
    float f[30];
    for (int i = 0; i < 30; i++)
        f[i] = (float)i * 0.5f;
    int64_t s3[3] = {3, 5, 2}, s4[4] = {1, 2, 3, 4}, s1[1] = {13};
    snprintf(path, sizeof path, "%s/a.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, f, 3, s3), ZF_OK, "%s", zf_last_error());
    check_same_bytes(path, "npy/write_f32_3x5x2.npy");
    snprintf(path, sizeof path, "%s/b.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, f, 4, s4), ZF_OK, "%s", zf_last_error());
    check_same_bytes(path, "npy/write_f32_1x2x3x4.npy");
    int32_t v[13];
    for (int i = 0; i < 13; i++)
        v[i] = i - 7;
    snprintf(path, sizeof path, "%s/c.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_I32, v, 1, s1), ZF_OK, "%s", zf_last_error());
    check_same_bytes(path, "npy/write_i32_13.npy");
}

Test(npy, reads_numpy_float32_and_int32)
{
    check_fixture("f32_4d", ZF_DTYPE_F32, 4, (int64_t[]){2, 3, 5, 7});
    check_fixture("i32_1d", ZF_DTYPE_I32, 1, (int64_t[]){11});
}

Test(npy, converts_float64_and_float16_as_numpy_astype_float32)
{
    check_fixture("f64_3d", ZF_DTYPE_F32, 3, (int64_t[]){3, 5, 7});
    check_fixture("f16_1d", ZF_DTYPE_F32, 1, (int64_t[]){11});
}

Test(npy, converts_integer_and_bool_dtypes_to_int32)
{
    check_fixture("i64_2d", ZF_DTYPE_I32, 2, (int64_t[]){2, 5});
    check_fixture("i16_2d", ZF_DTYPE_I32, 2, (int64_t[]){3, 4});
    check_fixture("u8_3d", ZF_DTYPE_I32, 3, (int64_t[]){2, 3, 5});
    check_fixture("i8_1d", ZF_DTYPE_I32, 1, (int64_t[]){5});
    check_fixture("u16_1d", ZF_DTYPE_I32, 1, (int64_t[]){4});
    check_fixture("u32_1d", ZF_DTYPE_I32, 1, (int64_t[]){3});
    check_fixture("bool_1d", ZF_DTYPE_I32, 1, (int64_t[]){4});
}

Test(npy, reads_format_versions_2_and_3)
{
    check_fixture("f32_v2", ZF_DTYPE_F32, 2, (int64_t[]){4, 3});
    check_fixture("f64_v3", ZF_DTYPE_F32, 1, (int64_t[]){5});
}

Test(npy, scalar_is_shape_1_and_leading_unit_axes_are_squeezed)
{
    check_fixture("scalar", ZF_DTYPE_F32, 1, (int64_t[]){1});
    check_fixture("squeeze6d", ZF_DTYPE_F32, 4, (int64_t[]){2, 3, 4, 5});
    check_fixture("empty", ZF_DTYPE_F32, 2, (int64_t[]){0, 3});
}

Test(npy, refuses_unsupported_arrays_naming_the_file)
{
    expect_refused(tu_fixture("npy/fortran.npy"), "Fortran");
    expect_refused(tu_fixture("npy/bigendian.npy"), "big-endian");
    expect_refused(tu_fixture("npy/object.npy"), "objects");
    expect_refused(tu_fixture("npy/structured.npy"), "structured");
    expect_refused(tu_fixture("npy/complex.npy"), "<c8");
    expect_refused(tu_fixture("npy/int64_big.npy"), "int32");
    expect_refused(tu_fixture("npy/five_dims.npy"), "dimensions");
}

Test(npy, truncated_or_padded_files_are_errors_naming_the_file)
{
    size_t len;
    unsigned char *b = tu_slurp(tu_fixture("npy/f32_4d.npy"), &len);
    size_t data_at = len - 2 * 3 * 5 * 7 * 4;
    size_t cuts[] = {0, 3, 6, 9, 20, data_at - 1, data_at, data_at + 1, len - 4, len - 1};
    const char *dir = tu_tmpdir("npy_cut");
    char path[4096];
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(path, sizeof path, "%s/cut%zu.npy", dir, cuts[i]);
        tu_write_file(path, b, cuts[i]);
        expect_refused(path, NULL);
    }
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    snprintf(path, sizeof path, "%s/longer.npy", dir);
    tu_write_file(path, longer, len + 1);
    expect_refused(path, "oversized");
    snprintf(path, sizeof path, "%s/cut.npy", dir);
    tu_write_file(path, b, len - 1);
    expect_refused(path, "truncated");
    free(longer);
    free(b);
}

Test(npy, bad_magic_and_missing_file_are_errors)
{
    const char *dir = tu_tmpdir("npy_magic");
    char path[4096];
    snprintf(path, sizeof path, "%s/png.npy", dir);
    tu_write_file(path, "\x89PNG\r\n\x1a\n\0\0\0\0", 12);
    expect_refused(path, "magic");
    snprintf(path, sizeof path, "%s/absent.npy", dir);
    zf_tensor *t;
    cr_assert_eq(zf_npy_read(path, &t), ZF_ERR_IO);
    cr_assert(strstr(zf_last_error(), path), "%s", zf_last_error());
    snprintf(path, sizeof path, "%s/version9.npy", dir);
    tu_write_file(path, "\x93NUMPY\x09\x00\x10\x00{}              ", 26);
    expect_refused(path, "version");
}

/* A version 1.0 .npy with this header text (padded with spaces and '\n' as numpy pads) and
 * `nbytes` bytes of data (i * 0.25 as float32). */
static void write_hand(const char *path, const char *header, size_t nbytes)
{
    size_t hl = strlen(header);
    size_t total = (10 + hl + 1 + 63) / 64 * 64;
    size_t hlen = total - 10;
    unsigned char *b = calloc(1, total + nbytes + 4);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memcpy(b + 10, header, hl);
    memset(b + 10 + hl, ' ', hlen - hl - 1);
    b[total - 1] = '\n';
    for (size_t i = 0; i < nbytes / 4; i++) {
        float v = (float)i * 0.25f;
        memcpy(b + total + 4 * i, &v, 4);
    }
    tu_write_file(path, b, total + nbytes);
    free(b);
}

Test(npy, header_parser_accepts_python_literal_variants)
{
    const char *dir = tu_tmpdir("npy_hdr_ok");
    const char *headers[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "{'shape': (2L, 3L), 'fortran_order': False, 'descr': '<f4'}",
        "{ 'fortran_order' :False ,'shape':(2,3,),'descr':'<f4' , }",
        "{'descr': '=f4',\n 'fortran_order': False,\n 'shape': (2, 3)}",
    };
    char path[4096];
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        snprintf(path, sizeof path, "%s/h%zu.npy", dir, i);
        write_hand(path, headers[i], 24);
        zf_tensor *t = NULL;
        cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "header %s: %s", headers[i], zf_last_error());
        cr_assert(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "header %s: wrong shape",
                  headers[i]);
        cr_assert_eq(zf_tensor_f32(t)[5], 1.25f);
        zf_tensor_free(t);
    }
    snprintf(path, sizeof path, "%s/one.npy", dir);
    write_hand(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 24);
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    cr_assert(t->ndim == 1 && t->shape[0] == 6);
    zf_tensor_free(t);
}

Test(npy, header_parser_refuses_malformed_headers)
{
    const char *dir = tu_tmpdir("npy_hdr_bad");
    struct {
        const char *header, *word;
        size_t bytes;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", "unexpected key", 24},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", "twice", 24},
        {"{'descr': '<f4', 'shape': (2, 3)}", "missing", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", "not a tuple", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3)}", "integers", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3)}", "tuple", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x", "after the dict", 24},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}", "dtype", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", "expected", 24},
        {"{'descr", "string", 24},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", "True or False", 24},
        {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3)}", "True or False", 24},
        {"['descr', '<f4']", "not a dict", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", "truncated", 20},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", "oversized", 28},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999)}", "", 24},
        {"{'descr': '<f3', 'fortran_order': False, 'shape': (2, 3)}", "dtype", 24},
        {"{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3)}", "dtype", 24},
        {"{'descr': '<U5', 'fortran_order': False, 'shape': (2, 3)}", "dtype", 24},
    };
    char path[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.npy", dir, i);
        write_hand(path, cases[i].header, cases[i].bytes);
        expect_refused(path, cases[i].word);
    }
}

Test(npy, write_to_missing_folder_is_io_error_naming_the_file)
{
    const char *dir = tu_tmpdir("npy_wfail");
    char path[4096];
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
    float v = 1;
    int64_t s = 1;
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, &v, 1, &s), ZF_ERR_IO);
    cr_assert(strstr(zf_last_error(), path), "%s", zf_last_error());
}
