/* Documents: PNG (one page) or PDF (many pages), written to a file or kept in memory, and the
 * one place cairo failures become zf_status values. */
#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "viz_internal.h"
#include "zf/alloc.h"
#include "zf/file.h"

struct zf_viz_doc {
    zf_viz_format format;
    char *path;             /* NULL: in memory */
    zf_file *file;          /* open from zf_viz_doc_open until finish or free (a temporary file) */
    cairo_surface_t *surf;  /* the PDF surface, or the PNG page */
    int pages, finished;
    int page_w, page_h;     /* the last page */
    uint8_t *buf;           /* in-memory bytes */
    size_t len, cap;
    zf_status write_st;     /* the first failed write, with its message */
    char write_msg[512];
};

zf_status zfv_cairo_fail(cairo_status_t st, const char *call, const char *func, const char *file, int line)
{
    zf_status code;
    switch (st) {
    case CAIRO_STATUS_NO_MEMORY: code = ZF_ERR_NOMEM; break;
    case CAIRO_STATUS_WRITE_ERROR:
    case CAIRO_STATUS_READ_ERROR:
    case CAIRO_STATUS_FILE_NOT_FOUND: code = ZF_ERR_IO; break;
    case CAIRO_STATUS_INVALID_SIZE:
    case CAIRO_STATUS_INVALID_STRIDE:
    case CAIRO_STATUS_INVALID_MATRIX: code = ZF_ERR_ARG; break;
    default: code = ZF_ERR_UNSUPPORTED; break;
    }
    const char *base = strrchr(file, '/');
    zf_error(code, "cairo: %s", cairo_status_to_string(st));
    return zf_error_where(code, "%s in %s(), %s:%d", call, func, base ? base + 1 : file, line);
}

zf_status zf_viz_format_of(const char *path, zf_viz_format *out)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (dot && !strcasecmp(dot, ".png")) {
        *out = ZF_VIZ_PNG;
        return ZF_OK;
    }
    if (dot && !strcasecmp(dot, ".pdf")) {
        *out = ZF_VIZ_PDF;
        return ZF_OK;
    }
    return zf_error(ZF_ERR_ARG, "%s: the output must end in .png or .pdf", path ? path : "(null)");
}

static zf_status doc_alloc(zf_viz_format format, zf_viz_doc **out)
{
    zf_viz_doc *d = zf_calloc(1, sizeof *d);
    if (!d)
        return zf_error(ZF_ERR_NOMEM, "viz: out of memory for a document");
    d->format = format;
    *out = d;
    return ZF_OK;
}

zf_status zf_viz_doc_open(const char *path, zf_viz_doc **out)
{
    *out = NULL;
    zf_viz_format fmt = ZF_VIZ_PNG;
    ZFV_TRY(zf_viz_format_of(path, &fmt));
    zf_viz_doc *d = NULL;
    ZFV_TRY(doc_alloc(fmt, &d));
    d->path = zf_strdup(path);
    if (!d->path) {
        free(d);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    }
    /* Opened now so that a bad path or a file zfviz may not replace fails before any rendering
     * work; what is at the path stays until the finished document is renamed over it. */
    zf_status st = zf_file_open(path, 0, &d->file);
    if (st) {
        free(d->path);
        free(d);
        return st;
    }
    *out = d;
    return ZF_OK;
}

zf_status zf_viz_doc_open_mem(zf_viz_format format, zf_viz_doc **out)
{
    *out = NULL;
    if (format != ZF_VIZ_PNG && format != ZF_VIZ_PDF)
        return zf_error(ZF_ERR_ARG, "viz: unknown document format %d", (int)format);
    return doc_alloc(format, out);
}

/* cairo's output callback: appends to the file (PDF) or the memory buffer (a PNG is marked as
 * zfviz's before it is written); keeps the first error, which names the file. */
static cairo_status_t doc_write(void *closure, const unsigned char *data, unsigned int len)
{
    zf_viz_doc *d = closure;
    if (d->write_st)
        return CAIRO_STATUS_WRITE_ERROR;
    if (d->file && d->format == ZF_VIZ_PDF) {
        if ((d->write_st = zf_file_write(d->file, data, len))) {
            snprintf(d->write_msg, sizeof d->write_msg, "%s", zf_last_error());
            return CAIRO_STATUS_WRITE_ERROR;
        }
        return CAIRO_STATUS_SUCCESS;
    }
    if (d->len + len > d->cap) {
        size_t cap = d->cap ? d->cap : 65536;
        while (cap < d->len + len)
            cap *= 2;
        uint8_t *nb = zf_realloc(d->buf, cap);
        if (!nb) {
            d->write_st = zf_error(ZF_ERR_NOMEM, "viz: out of memory for a %zu-byte document", cap);
            snprintf(d->write_msg, sizeof d->write_msg, "%s", zf_last_error());
            return CAIRO_STATUS_WRITE_ERROR;
        }
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    return CAIRO_STATUS_SUCCESS;
}

static const char *doc_name(const zf_viz_doc *d)
{
    return d->path ? d->path : (d->format == ZF_VIZ_PNG ? "(PNG in memory)" : "(PDF in memory)");
}

/* Creates the page surface (PNG) or the PDF surface / its next page size. */
static zf_status page_surface(zf_viz_doc *d, double w, double h)
{
    if (d->format == ZF_VIZ_PNG) {
        int iw = (int)ceil(w), ih = (int)ceil(h);
        cairo_surface_t *s;
        if (d->surf) { /* a page whose drawing failed */
            cairo_surface_destroy(d->surf);
            d->surf = NULL;
        }
        ZF_CAIRO(s, s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, iw, ih));
        d->surf = s;
        return ZF_OK;
    }
    if (!d->surf) {
        cairo_surface_t *s;
        ZF_CAIRO(s, s = cairo_pdf_surface_create_for_stream(doc_write, d, w, h));
        d->surf = s;
        ZF_CAIRO(s, cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "zfviz"));
    } else {
        ZF_CAIRO(d->surf, cairo_pdf_surface_set_size(d->surf, w, h));
    }
    return ZF_OK;
}

/* Paints the page white, draws it and, for PDF, ends the page. */
static zf_status page_draw(zf_viz_doc *d, cairo_t *cr, zfv_draw_fn fn, void *ctx)
{
    ZF_CAIRO(cr, cairo_set_source_rgb(cr, 1, 1, 1));
    ZF_CAIRO(cr, cairo_paint(cr));
    /* Unhinted metrics: text is measured without a page and must come out the same size on it. */
    cairo_font_options_t *fo;
    ZFV_TRY(zfv_font_options_new(&fo));
    zf_status st = ZF_OK;
    ZF_CAIRO_GOTO(cr, cairo_set_font_options(cr, fo), st, done);
done:
    cairo_font_options_destroy(fo);
    if (st != ZF_OK)
        return st;
    ZFV_TRY(fn(cr, ctx));
    if (d->format == ZF_VIZ_PDF)
        ZF_CAIRO(cr, cairo_show_page(cr));
    return ZF_OK;
}

zf_status zfv_page(zf_viz_doc *d, double w, double h, zfv_draw_fn fn, void *ctx)
{
    if (d->finished)
        return zf_error(ZF_ERR_ARG, "%s: the document is already finished", doc_name(d));
    if (d->format == ZF_VIZ_PNG && d->pages > 0)
        return zf_error(ZF_ERR_ARG, "%s: a PNG holds one page; write a .pdf for several", doc_name(d));
    if (!(w >= 1 && h >= 1 && w <= 32767 && h <= 32767))
        return zf_error(ZF_ERR_ARG, "%s: page size %.0f x %.0f is outside 1..32767", doc_name(d), w, h);
    ZFV_TRY(page_surface(d, w, h));
    cairo_t *cr = cairo_create(d->surf);
    zf_status st = ZF_OK;
    ZF_CAIRO_GOTO(cr, (void)0, st, done);
    st = page_draw(d, cr, fn, ctx);
done:
    cairo_destroy(cr);
    if (d->write_st) /* the file's own error, not cairo's "error while writing to output stream" */
        st = zf_error(d->write_st, "%s", d->write_msg);
    if (st == ZF_OK) {
        d->pages++;
        d->page_w = (int)ceil(w);
        d->page_h = (int)ceil(h);
    }
    return st;
}

cairo_surface_t *zfv_doc_pdf_surface(zf_viz_doc *d)
{
    return d->format == ZF_VIZ_PDF ? d->surf : NULL;
}

static zf_status finish_surface(zf_viz_doc *d)
{
    if (d->format == ZF_VIZ_PNG) {
        cairo_status_t ws;
        ZF_CAIRO(ws, ws = cairo_surface_write_to_png_stream(d->surf, doc_write, d));
    } else {
        ZF_CAIRO(d->surf, cairo_surface_finish(d->surf));
    }
    return ZF_OK;
}

zf_status zf_viz_doc_finish(zf_viz_doc *d)
{
    if (d->finished)
        return ZF_OK;
    if (d->pages == 0)
        return zf_error(ZF_ERR_ARG, "%s: nothing was drawn", doc_name(d));
    zf_status st = finish_surface(d);
    if (d->write_st)
        st = zf_error(d->write_st, "%s", d->write_msg);
    if (!st && d->file && d->format == ZF_VIZ_PNG) {
        void *png = NULL;
        size_t len = 0;
        st = zf_png_mark(d->buf, d->len, &png, &len);
        if (!st)
            st = zf_file_write(d->file, png, len);
        free(png);
        free(d->buf);
        d->buf = NULL;
        d->len = d->cap = 0;
    }
    if (d->file) {
        if (st)
            zf_file_discard(d->file);
        else
            st = zf_file_commit(d->file);
        d->file = NULL;
    }
    if (st != ZF_OK)
        return st;
    d->finished = 1;
    return ZF_OK;
}

const uint8_t *zf_viz_doc_bytes(const zf_viz_doc *d, size_t *len)
{
    if (!d->finished || d->path) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = d->len;
    return d->buf;
}

zf_viz_format zf_viz_doc_format(const zf_viz_doc *d) { return d->format; }
int zf_viz_doc_pages(const zf_viz_doc *d) { return d->pages; }

void zf_viz_doc_page_size(const zf_viz_doc *d, int *w, int *h)
{
    *w = d->page_w;
    *h = d->page_h;
}

void zf_viz_doc_free(zf_viz_doc *d)
{
    if (!d)
        return;
    if (d->surf)
        cairo_surface_destroy(d->surf);
    /* Unfinished: the temporary file goes, what was at the path stays. */
    zf_file_discard(d->file);
    free(d->path);
    free(d->buf);
    free(d);
}
