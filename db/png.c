/* PNG encoding into memory (libpng), for renderings stored as blobs. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct membuf {
    unsigned char *data;
    size_t len, cap;
    int nomem;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t len)
{
    membuf *b = png_get_io_ptr(png);
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            b->nomem = 1;
            png_error(png, "out of memory");
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void mem_flush(png_structp png) { (void)png; }

/* libpng reports errors by longjmp; keep its message for ours. */
static void png_err(png_structp png, png_const_charp msg)
{
    char *dst = png_get_error_ptr(png);
    snprintf(dst, 256, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

zf_status zf_db_png_encode(const zf_image *img, void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!img || img->w <= 0 || img->h <= 0 || !img->rgb)
        return zf_error(ZF_ERR_ARG, "PNG encoding: empty image");
    char msg[256] = "";
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, png_err, png_warn);
    if (!png)
        return zf_error(ZF_ERR_NOMEM, "PNG encoding: png_create_write_struct failed");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return zf_error(ZF_ERR_NOMEM, "PNG encoding: png_create_info_struct failed");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(b.data);
        return zf_error(b.nomem ? ZF_ERR_NOMEM : ZF_ERR_FORMAT, "PNG encoding (%dx%d): %s", img->w,
                        img->h, msg);
    }
    png_set_write_fn(png, &b, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->h; y++)
        png_write_row(png, (png_const_bytep)(img->rgb + (size_t)y * img->w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = b.data;
    *out_len = b.len;
    return ZF_OK;
}
