/* The unit atlas (see site.h): HTML pages, inline SVG plots and PNG files written from a scan
 * database; projections missing from the database are made with the sheets' deconv code and stored. */
#include "site.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zf/db_site.h"
#include "zf/file.h"
#include "zf/input.h"
#include "zf/io.h"
#include "zf/occlusion.h"

/* Pages start with "<!DOCTYPE html>\n<!-- zfviz ", stylesheet and script with a block comment that
 * starts " zfviz ": that is how zf_file_is_ours knows them as zfviz's on the next build. */
const char zft_site_css[] =
    "/* zfviz atlas stylesheet */\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}\n"
    "a{color:#1a55a0}nav{margin-bottom:1em}nav a{margin-right:1em}\n"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}\n"
    "th{cursor:pointer;background:#eee;user-select:none}th[aria-sort=ascending]::after{content:' \\25B2'}\n"
    "th[aria-sort=descending]::after{content:' \\25BC'}td.l,th.l{text-align:left}\n"
    ".dead{color:#b00}.near{color:#b60}\n"
    ".grid{display:flex;flex-wrap:wrap;gap:4px}.grid a{display:block;width:56px;text-align:center;"
    "font-size:11px}.grid img,.grid span.none{width:48px;height:48px;image-rendering:pixelated;"
    "display:block;margin:auto;background:#ccc}\n"
    ".ex{display:flex;flex-wrap:wrap;gap:12px}.ex figure{margin:0;text-align:center;font-size:12px}"
    ".ex img{width:96px;height:96px;image-rendering:pixelated;margin:1px}.ex img.filters{width:auto;height:auto}\n"
    "figcaption{max-width:200px;overflow-wrap:anywhere}svg{background:#fff;border:1px solid #ddd}\n";

const char zft_site_js[] =
    "/* zfviz atlas script: sortable tables and keyboard navigation; it asks nothing of the network. */\n"
    "(function () {\n"
    "  'use strict';\n"
    "  function key(td) {\n"
    "    var v = td.getAttribute('data-v');\n"
    "    if (v === null) v = td.textContent;\n"
    "    var x = parseFloat(v);\n"
    "    return isNaN(x) ? v : x;\n"
    "  }\n"
    "  function sort(table, th, col) {\n"
    "    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);\n"
    "    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;\n"
    "    rows.sort(function (a, b) {\n"
    "      var x = key(a.cells[col]), y = key(b.cells[col]);\n"
    "      if (typeof x !== typeof y) return (typeof x === 'number' ? -1 : 1) * dir;\n"
    "      return x === y ? 0 : (x < y ? -1 : 1) * dir;\n"
    "    });\n"
    "    rows.forEach(function (r) { body.appendChild(r); });\n"
    "    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute('aria-sort'); });\n"
    "    th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');\n"
    "  }\n"
    "  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (t) {\n"
    "    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, col) {\n"
    "      th.tabIndex = 0;\n"
    "      th.addEventListener('click', function () { sort(t, th, col); });\n"
    "      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(t, th, col); });\n"
    "    });\n"
    "  });\n"
    "  document.addEventListener('keydown', function (e) {\n"
    "    if (e.altKey || e.ctrlKey || e.metaKey || /^(INPUT|TEXTAREA|TH)$/.test(e.target.tagName)) return;\n"
    "    var rel = {ArrowLeft: 'prev', ArrowRight: 'next', ArrowUp: 'up'}[e.key];\n"
    "    var a = rel && document.querySelector('a[rel=\"' + rel + '\"]');\n"
    "    if (a) location.href = a.href;\n"
    "  });\n"
    "  document.documentElement.setAttribute('data-atlas', 'ready');\n"
    "})();\n";

/* ---- a growing text buffer ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* Text as HTML (element content and quoted attribute values alike). */
static void sb_esc(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_add(b, "&amp;"); break;
        case '<': sb_add(b, "&lt;"); break;
        case '>': sb_add(b, "&gt;"); break;
        case '"': sb_add(b, "&quot;"); break;
        case '\'': sb_add(b, "&#39;"); break;
        default: sb_add(b, "%c", *s);
        }
    }
}

/* ---- the build ---- */

typedef struct run_info {
    zf_db_run run;
    zf_db_model model;
} run_info;

typedef struct runs_list {
    run_info *r;
    int n;
    int oom;
} runs_list;

static void collect_run(void *ctx, const zf_db_run *run, const zf_db_model *m)
{
    runs_list *l = ctx;
    run_info *nr = realloc(l->r, sizeof *nr * (size_t)(l->n + 1));
    if (!nr) {
        l->oom = 1;
        return;
    }
    l->r = nr;
    l->r[l->n].run = *run;
    l->r[l->n].model = *m;
    l->n++;
}

/* What a layer's page and the index say of it. */
typedef struct layer_sum {
    char name[32];
    int units, dead, near, conv;
    double mean_active, max;
} layer_sum;

/* Scanned images as the net saw them (RGB, in_w x in_h), the last few read: a layer's bottom-k
 * patches come from few images, each of which would otherwise be read, hashed and decoded per patch. */
enum { SEEN_IMAGES = 32 };
typedef struct seen_image {
    int64_t run, image_id;
    uint8_t *rgb; /* NULL: missing or changed */
    unsigned long used;
} seen_image;

typedef struct site {
    const zft_site_opts *o;
    seen_image seen[SEEN_IMAGES];
    unsigned long clock;
    zft_site_stats *stats;
    zf_db *db;
    runs_list runs;
    int served; /* zfviz serve: the index offers an upload */
} site;

/* page: 1 an HTML page, 0 a PNG, 2 the stylesheet or script (counted as neither). */
static zf_status put_file(site *S, const char *rel, const void *data, size_t len, int page)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", S->o->out, rel) >= (int)sizeof path)
        return zf_error(ZF_ERR_ARG, "%s/%s: path too long", S->o->out, rel);
    zf_status st = zft_output_prepare(path);
    if (!st)
        st = zf_file_save(path, data, len, 0);
    if (st)
        return st;
    if (page == 1) {
        S->stats->pages++;
        if (len > S->stats->largest) {
            S->stats->largest = len;
            snprintf(S->stats->largest_path, sizeof S->stats->largest_path, "%s", path);
        }
    } else if (page == 0) {
        S->stats->pngs++;
    }
    return ZF_OK;
}

static zf_status put_page(site *S, const char *rel, sbuf *b)
{
    if (b->oom)
        return zf_error(ZF_ERR_NOMEM, "%s/%s: out of memory", S->o->out, rel);
    return put_file(S, rel, b->p, b->len, 1);
}

/* A PNG in memory, marked as zfviz's, as DIR/rel. */
static zf_status put_png(site *S, const char *rel, const void *png, size_t len)
{
    void *marked = NULL;
    size_t mlen = 0;
    zf_status st = zf_png_mark(png, len, &marked, &mlen);
    if (!st)
        st = put_file(S, rel, marked, mlen, 0);
    free(marked);
    return st;
}

/* Layer and run names become folder names: only plain ones. */
static int safe_name(const char *s)
{
    if (!*s || *s == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static void page_head(sbuf *b, const char *title, const char *root)
{
    sb_add(b, "<!DOCTYPE html>\n<!-- zfviz atlas page -->\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; img-src 'self' data:; "
              "style-src 'self'; script-src 'self'\">\n<title>");
    sb_esc(b, title);
    sb_add(b, "</title>\n<link rel=\"stylesheet\" href=\"%satlas.css\">\n</head><body>\n", root);
}

static void page_tail(sbuf *b, const char *root)
{
    sb_add(b, "<script src=\"%satlas.js\"></script>\n</body></html>\n", root);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char *flag_of(const zf_db_unit_row *u, double min_active)
{
    if (u->max <= 0)
        return "dead";
    if (u->active_fraction < min_active)
        return "near-dead";
    return "";
}

/* The projected examples of one unit: PNG bytes per rank, kind deconv [0] and patch [1]. */
typedef struct unit_pngs {
    void *png[9][2];
    size_t len[9][2];
    int n;
} unit_pngs;

static void unit_pngs_free(unit_pngs *u)
{
    for (int i = 0; i < 9; i++)
        for (int k = 0; k < 2; k++)
            free(u->png[i][k]);
    memset(u, 0, sizeof *u);
}

static const char *const kinds[2] = {"deconv", "patch"};

/* The renderings of every example of `unit` when all are stored: 1, else 0. */
static zf_status stored_pngs(site *S, int64_t run, const char *layer, int unit, const zf_db_example *ex, int n,
                             unit_pngs *out, int *all)
{
    *all = 0;
    memset(out, 0, sizeof *out);
    out->n = n;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            zf_status st = zf_db_rendering_find(S->db, run, layer, unit, ex[i].rank, kinds[k], ex[i].image_id,
                                                &out->png[i][k], &out->len[i][k]);
            if (st)
                return st;
            if (!out->png[i][k]) {
                unit_pngs_free(out);
                return ZF_OK;
            }
        }
    *all = 1;
    return ZF_OK;
}

/* A projection (C planes of w x h, RGB or one grey plane) as an image: zero mid-grey, the largest
 * |value| over all planes 0 or 255. */
static void proj_to_image(zf_image *img, const float *proj, int C)
{
    const size_t plane = (size_t)img->w * img->h;
    float amax = 0;
    for (size_t i = 0; i < (size_t)C * plane; i++)
        amax = fmaxf(amax, fabsf(proj[i]));
    const float scale = amax > 0 ? 127.5f / amax : 0;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float v = 127.5f + scale * proj[(C == 1 ? 0 : (size_t)c) * plane + i];
            img->rgb[i * 3 + c] = (uint8_t)fminf(255, fmaxf(0, roundf(v)));
        }
}

/* A sheet's patch as the two pictures topk --deconv stores: the projection with zero mid-grey and
 * the largest |value| 0 or 255, and the input patch. */
static zf_status patch_pngs(const zf_viz_patch *p, void **png, size_t *len)
{
    zf_image *img[2] = {zf_image_new(p->w, p->h), zf_image_new(p->w, p->h)};
    zf_status st = ZF_OK;
    if (!img[0] || !img[1]) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto out;
    }
    proj_to_image(img[0], p->proj, p->channels ? p->channels : 3);
    memcpy(img[1]->rgb, p->rgb, (size_t)p->w * p->h * 3);
    for (int k = 0; k < 2 && !st; k++)
        st = zf_db_png_encode(img[k], &png[k], &len[k]);
out:
    zf_image_free(img[0]);
    zf_image_free(img[1]);
    return st;
}

/* Projects the examples of `units` (those whose renderings are not all stored), stores the
 * renderings (not those of missing images, drawn as placeholders) and hands them back in `out`. */
static zf_status render_units(site *S, zft_scan *scan, const char *layer, const int *units, int n, unit_pngs *out)
{
    zft_sheet sh;
    double t0 = zft_now();
    zf_status st = zft_sheet_build(&sh, scan, layer, units, n, S->o->lrn_backward);
    if (!st)
        st = zf_db_begin(S->db);
    for (int j = 0; j < n && !st; j++) {
        const zf_viz_unit *u = &sh.units[j];
        zf_db_example *ex = NULL;
        int k = 0;
        if ((st = zf_db_topk_get(S->db, scan->run.id, layer, units[j], &ex, &k)))
            break;
        memset(&out[j], 0, sizeof out[j]);
        out[j].n = u->n;
        for (int i = 0; i < u->n && i < k && !st; i++) {
            const zf_viz_patch *p = &u->top[i];
            if ((st = patch_pngs(p, out[j].png[i], out[j].len[i])))
                break;
            S->stats->rendered++;
            if (p->caption && !strncmp(p->caption, "missing: ", 9))
                continue;
            const zf_db_example *e = &ex[i];
            char what[768];
            snprintf(what, sizeof what,
                     "deconvnet projection of %s unit %d at (y %d, x %d) of image %lld (rank %d, score %.6g), "
                     "cropped to its receptive field x %d-%d, y %d-%d of the %dx%d input; LRN %s on the way "
                     "down; zero is mid-grey, the largest |value| 0 or 255",
                     layer, units[j], e->y, e->x, (long long)e->image_id, e->rank, e->score, e->box.x0,
                     e->box.x1 - 1, e->box.y0, e->box.y1 - 1, scan->net->in_w, scan->net->in_h,
                     S->o->lrn_backward ? "backward" : "as identity");
            zf_db_rendering r = {scan->run.id, e->image_id, layer, units[j], e->rank, "deconv", what, p->w, p->h};
            int64_t id;
            if ((st = zf_db_rendering_put(S->db, &r, out[j].png[i][0], out[j].len[i][0], &id)))
                break;
            snprintf(what, sizeof what,
                     "input patch under the receptive field of %s unit %d at (y %d, x %d) of image %lld (rank "
                     "%d): x %d-%d, y %d-%d of the %dx%d preprocessed input, preprocessing undone",
                     layer, units[j], e->y, e->x, (long long)e->image_id, e->rank, e->box.x0, e->box.x1 - 1,
                     e->box.y0, e->box.y1 - 1, scan->net->in_w, scan->net->in_h);
            r.kind = "patch";
            r.description = what;
            st = zf_db_rendering_put(S->db, &r, out[j].png[i][1], out[j].len[i][1], &id);
        }
        free(ex);
    }
    if (!st)
        st = zf_db_commit(S->db);
    else
        zf_db_rollback(S->db);
    zft_sheet_free(&sh);
    S->stats->secs_render += zft_now() - t0;
    return st;
}

/* The unit's filter as inline SVG: the first conv layer's kernel in colour (grey for a grey net),
 * any other conv layer's as the norm of its kernel over each input channel. */
static void filter_svg(sbuf *b, const zf_net *net, int li, int unit, int first_conv)
{
    const zf_layer *l = &net->layers[li];
    const int cin = l->in_c / (l->groups > 0 ? l->groups : 1), kh = l->win.kh, kw = l->win.kw;
    const float *w = l->weight + (size_t)unit * cin * kh * kw;
    const size_t per = (size_t)kh * kw;
    if (first_conv) {
        float amax = 0;
        for (size_t i = 0; i < (size_t)cin * per; i++)
            amax = fmaxf(amax, fabsf(w[i]));
        const int cell = kh * 12 > 180 ? 180 / kh : 12;
        sb_add(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"filter\">", kw * cell,
               kh * cell, kw * cell, kh * cell);
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++) {
                int rgb[3];
                for (int c = 0; c < 3; c++) {
                    int src = cin >= 3 ? (net->pre.order == ZF_COLOR_BGR ? 2 - c : c) : 0;
                    float v = amax > 0 ? w[(size_t)src * per + (size_t)y * kw + x] / amax : 0;
                    rgb[c] = (int)fminf(255, fmaxf(0, roundf(127.5f + 127.5f * v)));
                }
                sb_add(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\"/>", x * cell,
                       y * cell, cell, cell, rgb[0], rgb[1], rgb[2]);
            }
        sb_add(b, "</svg>\n<p>The kernel (%d x %d), zero mid-grey, the largest |weight| black or white.</p>\n", kh,
               kw);
        return;
    }
    float *norm = malloc(sizeof *norm * (size_t)cin);
    if (!norm) {
        b->oom = 1;
        return;
    }
    float nmax = 0;
    for (int c = 0; c < cin; c++) {
        double s = 0;
        for (size_t i = 0; i < per; i++)
            s += (double)w[c * per + i] * w[c * per + i];
        norm[c] = (float)sqrt(s);
        nmax = fmaxf(nmax, norm[c]);
    }
    const int W = 640, H = 100, bw = W / cin > 0 ? W / cin : 1, width = bw * cin;
    sb_add(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"filter norms\">",
           width, H, width, H);
    for (int c = 0; c < cin; c++) {
        int h = nmax > 0 ? (int)lroundf(norm[c] / nmax * (H - 2)) : 0;
        sb_add(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4a78b0\"><title>channel %d: %.4g</title></rect>",
               c * bw, H - h, bw > 1 ? bw - (bw > 3) : 1, h, c, norm[c]);
    }
    sb_add(b, "</svg>\n<p>The L2 norm of the kernel (%d x %d) over each of its %d input channels (largest %.4g).</p>\n",
           kh, kw, cin, nmax);
    free(norm);
}

/* The top-k scores as an inline SVG bar chart. */
static void scores_svg(sbuf *b, const zf_db_example *ex, int n)
{
    double smax = 0;
    for (int i = 0; i < n; i++)
        smax = fmax(smax, fabs(ex[i].score));
    const int W = 30 * n + 10, H = 90;
    sb_add(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"top scores\">", W, H, W,
           H);
    for (int i = 0; i < n; i++) {
        int h = smax > 0 ? (int)lround(fabs(ex[i].score) / smax * (H - 20)) : 0;
        sb_add(b, "<rect x=\"%d\" y=\"%d\" width=\"24\" height=\"%d\" fill=\"%s\"><title>rank %d: %.6g</title></rect>"
                  "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%d</text>",
               8 + 30 * i, H - 14 - h, h, ex[i].score > 0 ? "#4a78b0" : "#b04a4a", ex[i].rank, ex[i].score,
               20 + 30 * i, H - 3, ex[i].rank);
    }
    sb_add(b, "</svg>\n");
}

/* A unit's histogram (ZF_DB_HIST_BINS bins of zf/db.h: quarter octaves of |value| from 2^-16 to 2^16,
 * negative ones mirrored, zero in the middle) as inline SVG: one bar per non-empty bin, its height
 * log(1 + count) so that the rare strong values stay visible beside the many near zero. */
static void hist_svg(sbuf *b, const int64_t *counts)
{
    const int bins = ZF_DB_HIST_BINS - 1, bw = 2, W = bins * bw, H = 110, base = H - 16; /* NaN bin apart */
    double lmax = 0;
    for (int i = 0; i < bins; i++)
        lmax = fmax(lmax, log1p((double)counts[i]));
    sb_add(b, "<svg class=\"hist\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"histogram\">",
           W, H, W, H);
    for (int i = 0; i < bins; i++) {
        if (!counts[i])
            continue;
        int h = lmax > 0 ? (int)lround(log1p((double)counts[i]) / lmax * (base - 4)) : 0;
        sb_add(b, "<rect data-bin=\"%d\" data-count=\"%lld\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">"
                  "<title>bin %d: %lld</title></rect>",
               i, (long long)counts[i], i * bw, base - h, bw, h, i < 129 ? "#b04a4a" : i == 129 ? "#888" : "#4a78b0", i,
               (long long)counts[i]);
    }
    /* bins 64, 129 and 194 begin at -1, zero and 1 */
    const int ticks[5] = {0, 64, 129, 194, bins - 1};
    const char *labels[5] = {"-65536", "-1", "0", "1", "65536"};
    for (int t = 0; t < 5; t++)
        sb_add(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/><text x=\"%d\" y=\"%d\" font-size=\"10\" "
                  "text-anchor=\"%s\">%s</text>",
               ticks[t] * bw + 1, base, ticks[t] * bw + 1, base + 3, ticks[t] * bw + 1, H - 2,
               t == 0 ? "start" : t == 4 ? "end" : "middle", labels[t]);
    sb_add(b, "</svg>\n<p>Values before the ReLU over every position of every image, in quarter octaves of their "
              "magnitude (negative red, positive blue); bar heights on a log scale.%s</p>\n",
           counts[bins] ? " Some values were NaN." : "");
}

static void stats_rows(sbuf *b, const zf_db_unit_row *u, double min_active)
{
    const char *flag = flag_of(u, min_active);
    sb_add(b, "<table class=\"stats\"><tbody>\n<tr><th class=\"l\">images<td>%lld</tr>\n"
              "<tr><th class=\"l\">active fraction<td>%.6g</tr>\n<tr><th class=\"l\">positive fraction<td>%.6g</tr>\n"
              "<tr><th class=\"l\">mean<td>%.6g</tr>\n<tr><th class=\"l\">max<td>%.6g</tr>\n"
              "<tr><th class=\"l\">max at<td>image %lld, y %d, x %d</tr>\n",
           (long long)u->images, u->active_fraction, u->positive_fraction, u->mean, u->max,
           (long long)u->max_image_id, u->max_y, u->max_x);
    if (*flag)
        sb_add(b, "<tr><th class=\"l\">state<td class=\"%s\">%s</tr>\n", flag[0] == 'd' ? "dead" : "near", flag);
    sb_add(b, "</tbody></table>\n");
}

typedef struct layer_ctx {
    site *S;
    zft_scan *scan;
    const run_info *ri;
    const char *layer;
    int li, conv, first_conv;
    zf_db_unit_row *rows;
    int n_rows;
    unsigned char *has_png; /* per row: its projections were written */
    unsigned char *has_bot; /* per row: its bottom-k patches were written (or are served) */
    zf_db_selectivity *sel; /* the class selectivity of the layer's units, in unit order; none
                             * for a scan without classes */
    int n_sel;
} layer_ctx;

/* The selectivity row of `unit`, or NULL. */
static const zf_db_selectivity *sel_of(const layer_ctx *L, int unit)
{
    int lo = 0, hi = L->n_sel - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (L->sel[mid].unit == unit)
            return &L->sel[mid];
        if (L->sel[mid].unit < unit)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* A bottom-k example's input patch: the scanned image (checked unchanged) preprocessed, shown as
 * the scan saw it and cropped to the receptive field of the example's position, as PNG bytes; a
 * grey crossed-out placeholder of that size when the image is missing or changed (*missing = 1). */
static zf_status bottom_png(site *S, zft_scan *scan, const zf_db_example *e, void **png, size_t *len,
                            int *missing)
{
    zf_net *net = scan->net;
    const int H = net->in_h, W = net->in_w;
    zf_box b = e->box;
    if (b.x0 < 0 || b.y0 < 0 || b.x1 > W || b.y1 > H || b.x1 <= b.x0 || b.y1 <= b.y0)
        return zf_error(ZF_ERR_ARG, "%s: bottom-k example %d has no receptive field inside the %dx%d input",
                        zf_db_path(scan->db), e->rank, W, H);
    const int w = b.x1 - b.x0, h = b.y1 - b.y0;
    seen_image *si = NULL, *oldest = &S->seen[0];
    for (int i = 0; i < SEEN_IMAGES && !si; i++) {
        if (S->seen[i].used && S->seen[i].run == scan->run.id && S->seen[i].image_id == e->image_id)
            si = &S->seen[i];
        else if (S->seen[i].used < oldest->used)
            oldest = &S->seen[i];
    }
    float *in = NULL;
    zf_image *img = zf_image_new(w, h);
    zf_status st = ZF_OK;
    *missing = 0;
    if (!img) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!si) { /* read it, in place of the one used longest ago */
        si = oldest;
        free(si->rgb);
        memset(si, 0, sizeof *si);
        in = malloc(sizeof *in * (size_t)zf_net_in_size(net));
        uint8_t *rgb = malloc((size_t)W * H * 3);
        if (!in || !rgb) {
            free(rgb);
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (zft_example_load(net, e, &scan->reroot, in)) {
            free(rgb);
        } else {
            zf_viz_input_to_rgb(rgb, in, &net->pre, H, W);
            si->rgb = rgb;
        }
        si->run = scan->run.id;
        si->image_id = e->image_id;
    }
    si->used = ++S->clock;
    if (!si->rgb) {
        *missing = 1;
        memset(img->rgb, 160, (size_t)w * h * 3);
        for (int k = 0; k < (w > h ? w : h); k++) {
            int x = (int)((long)k * w / (w > h ? w : h)), y = (int)((long)k * h / (w > h ? w : h));
            memset(img->rgb + ((size_t)y * w + x) * 3, 64, 3);
            memset(img->rgb + ((size_t)(h - 1 - y) * w + x) * 3, 64, 3);
        }
    } else {
        for (int y = 0; y < h; y++)
            memcpy(img->rgb + (size_t)y * w * 3, si->rgb + ((size_t)(b.y0 + y) * W + b.x0) * 3, (size_t)w * 3);
    }
    st = zf_db_png_encode(img, png, len);
out:
    zf_image_free(img);
    free(in);
    return st;
}

/* The bottom-k patches of row r: stored ones copied, the others made (and stored when `store`),
 * each written to DIR as img/<unit>-<rank>-bottom.png. */
static zf_status write_bottom_pngs(layer_ctx *L, int r, int store)
{
    site *S = L->S;
    const int64_t run = L->ri->run.id;
    const int unit = L->rows[r].unit;
    zf_db_example *bot = NULL;
    int nb = 0;
    zf_status st = zf_db_bottomk_get(S->db, run, L->layer, unit, &bot, &nb);
    for (int i = 0; i < nb && !st; i++) {
        void *png = NULL;
        size_t len = 0;
        int missing = 0;
        if ((st = zf_db_rendering_find(S->db, run, L->layer, unit, bot[i].rank, "bottom-patch", bot[i].image_id,
                                       &png, &len)))
            break;
        if (png) {
            S->stats->reused++;
        } else {
            double t0 = zft_now();
            st = bottom_png(S, L->scan, &bot[i], &png, &len, &missing);
            S->stats->secs_bottom += zft_now() - t0;
            if (!st && store && !missing) {
                char what[512];
                const zf_db_example *e = &bot[i];
                snprintf(what, sizeof what,
                         "input patch under the receptive field of %s unit %d at (y %d, x %d) of image %lld, its "
                         "bottom-k rank %d (score %.6g): x %d-%d, y %d-%d of the %dx%d preprocessed input, "
                         "preprocessing undone",
                         L->layer, unit, e->y, e->x, (long long)e->image_id, e->rank, e->score, e->box.x0,
                         e->box.x1 - 1, e->box.y0, e->box.y1 - 1, L->scan->net->in_w, L->scan->net->in_h);
                zf_db_rendering rd = {run, e->image_id, L->layer, unit, e->rank, "bottom-patch", what,
                                      e->box.x1 - e->box.x0, e->box.y1 - e->box.y0};
                int64_t id;
                st = zf_db_rendering_put(S->db, &rd, png, len, &id);
            }
            S->stats->rendered_bottom++;
        }
        char rel[512];
        snprintf(rel, sizeof rel, "%lld/%s/img/%d-%d-bottom.png", (long long)run, L->layer, unit, bot[i].rank);
        if (!st)
            st = put_png(S, rel, png, len);
        free(png);
    }
    free(bot);
    if (!st)
        L->has_bot[r] = nb > 0;
    return st;
}

/* Writes the example pictures of row r and records them. */
static zf_status write_unit_pngs(layer_ctx *L, int r, const unit_pngs *p)
{
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < 2; k++) {
            char rel[512];
            snprintf(rel, sizeof rel, "%lld/%s/img/%d-%d-%s.png", (long long)L->ri->run.id, L->layer, L->rows[r].unit,
                     i + 1, kinds[k]);
            zf_status st = put_png(L->S, rel, p->png[i][k], p->len[i][k]);
            if (st)
                return st;
        }
    L->has_png[r] = p->n > 0;
    return ZF_OK;
}

/* A unit's mean activation per class (view unit_class_mean), the strongest classes as an inline
 * SVG bar chart: at most CLASS_BARS, the largest first. */
enum { CLASS_BARS = 20 };
static zf_status class_means_html(sbuf *b, zf_db *db, int64_t run, const char *layer, int unit)
{
    zf_db_class_mean *cm = NULL;
    int n = 0;
    zf_status st = zf_db_unit_class_means(db, run, layer, unit, &cm, &n);
    if (st || n == 0) {
        free(cm);
        return st;
    }
    const int shown = n < CLASS_BARS ? n : CLASS_BARS, row = 16, label = 180, W = 560, H = shown * row + 4;
    double mmax = 0;
    for (int i = 0; i < n; i++)
        mmax = fmax(mmax, cm[i].mean);
    sb_add(b, "<h2>Mean activation per class</h2>\n<p>Over each class's images, the mean of the image's spatial "
              "mean of the rectified map; %s of %d classes, the largest first.</p>\n",
           shown < n ? "the strongest" : "all", n);
    sb_add(b, "<svg class=\"classes\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
              "aria-label=\"mean per class\">",
           W, H, W, H);
    for (int i = 0; i < shown; i++) {
        int w = mmax > 0 ? (int)lround(cm[i].mean / mmax * (W - label - 80)) : 0;
        sb_add(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">", label - 4, i * row + 13);
        sb_esc(b, cm[i].name);
        sb_add(b, "</text><rect data-class=\"");
        sb_esc(b, cm[i].name);
        sb_add(b, "\" data-mean=\"%.9g\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4a78b0\">"
                  "<title>%lld images: %.6g</title></rect><text x=\"%d\" y=\"%d\" font-size=\"10\">%.4g</text>",
               cm[i].mean, label, i * row + 3, w > 0 ? w : 0, row - 4, (long long)cm[i].images, cm[i].mean,
               label + (w > 0 ? w : 0) + 4, i * row + 13, cm[i].mean);
    }
    sb_add(b, "</svg>\n");
    free(cm);
    return ZF_OK;
}

/* The page of row r into b. */
static zf_status unit_html(layer_ctx *L, int r, sbuf *b)
{
    site *S = L->S;
    const zf_db_unit_row *u = &L->rows[r];
    const int64_t run = L->ri->run.id;
    zf_db_example *ex = NULL;
    int n = 0;
    zf_status st = zf_db_topk_get(S->db, run, L->layer, u->unit, &ex, &n);
    if (st)
        return st;
    char title[160];
    snprintf(title, sizeof title, "%s unit %d, run %lld", L->layer, u->unit, (long long)run);
    page_head(b, title, "../../");
    sb_add(b, "<nav><a href=\"../../index.html\">atlas</a><a rel=\"up\" href=\"index.html\">run %lld %s</a>", (long long)run,
           L->layer);
    if (r > 0)
        sb_add(b, "<a rel=\"prev\" href=\"%d.html\">&larr; unit %d</a>", L->rows[r - 1].unit, L->rows[r - 1].unit);
    if (r + 1 < L->n_rows)
        sb_add(b, "<a rel=\"next\" href=\"%d.html\">unit %d &rarr;</a>", L->rows[r + 1].unit, L->rows[r + 1].unit);
    sb_add(b, "</nav>\n<h1>");
    sb_esc(b, title);
    sb_add(b, "</h1>\n<p>");
    sb_esc(b, L->ri->model.arch);
    sb_add(b, " (");
    sb_esc(b, L->ri->model.file[0] ? L->ri->model.file : L->ri->model.weights);
    sb_add(b, ")</p>\n");
    /* the same unit in the other runs that scanned this layer */
    int others = 0;
    for (int i = 0; i < S->runs.n; i++) {
        const run_info *o = &S->runs.r[i];
        if (o->run.id == run || (S->o->run && o->run.id != S->o->run))
            continue;
        char buf[512];
        const char *names[64];
        int k = zft_split_list(o->run.layers, buf, sizeof buf, names, 64), has = 0;
        for (int j = 0; j < k; j++)
            has |= !strcmp(names[j], L->layer);
        if (!has)
            continue;
        sb_add(b, "%s<a href=\"../../%lld/%s/%d.html\">run %lld (", others++ ? ", " : "<p>In other runs: ",
               (long long)o->run.id, L->layer, u->unit, (long long)o->run.id);
        sb_esc(b, o->model.arch);
        sb_add(b, ")</a>");
    }
    if (others)
        sb_add(b, "</p>\n");
    sb_add(b, "<h2>Statistics</h2>\n");
    stats_rows(b, u, S->o->min_active);
    const zf_db_selectivity *sel = sel_of(L, u->unit);
    if (sel) {
        sb_add(b, "<p class=\"selectivity\">Class selectivity index: <span class=\"sel\">");
        if (sel->has_index)
            sb_add(b, "%.9g", sel->selectivity);
        else
            sb_add(b, "none");
        sb_add(b, "</span>; best class: <span class=\"best\">");
        sb_esc(b, sel->best_class[0] ? sel->best_class : "none");
        sb_add(b, "</span>.</p>\n");
    }
    if (L->ri->run.classes > 0 && (st = class_means_html(b, S->db, run, L->layer, u->unit))) {
        free(ex);
        return st;
    }
    int64_t hist[ZF_DB_HIST_BINS];
    int has_hist = 0;
    if ((st = zf_db_unit_hist_get(S->db, run, L->layer, u->unit, hist, &has_hist))) {
        free(ex);
        return st;
    }
    if (has_hist) {
        sb_add(b, "<h2>Activation histogram</h2>\n");
        hist_svg(b, hist);
    }
    sb_add(b, "<h2>Top %d examples</h2>\n", n);
    if (n == 0)
        sb_add(b, "<p>No examples stored.</p>\n");
    else
        scores_svg(b, ex, n);
    if (n > 0 && L->conv && !L->has_png[r])
        sb_add(b, "<p>Projections not rendered: not among the strongest units chosen with --top-units.</p>\n");
    if (n > 0 && !L->conv)
        sb_add(b, "<p>A fully connected unit sees the whole input: no pixel-space projection.</p>\n");
    sb_add(b, "<div class=\"ex\">\n");
    for (int i = 0; i < n; i++) {
        sb_add(b, "<figure class=\"example\" data-rank=\"%d\">", ex[i].rank);
        if (L->has_png[r] && i < 9)
            sb_add(b, "<img class=\"patch\" src=\"img/%d-%d-patch.png\" alt=\"patch %d\">"
                       "<img class=\"deconv\" src=\"img/%d-%d-deconv.png\" alt=\"projection %d\">",
                   u->unit, i + 1, i + 1, u->unit, i + 1, i + 1);
        sb_add(b, "<figcaption>%d. %.6g at (%d, %d)<br>", ex[i].rank, ex[i].score, ex[i].y, ex[i].x);
        sb_esc(b, base_name(ex[i].path));
        if (L->ri->run.classes > 0) {
            char cls[256];
            if ((st = zf_db_image_class(S->db, run, ex[i].seq, cls, sizeof cls))) {
                free(ex);
                return st;
            }
            sb_add(b, "<br><span class=\"class\">");
            sb_esc(b, cls[0] ? cls : "(no class)");
            sb_add(b, "</span>");
        }
        if (S->served && L->conv)
            sb_add(b, "<br><a href=\"%d/deconv/%lld.png\">whole-image projection</a>, "
                      "<a href=\"%d/occlude/%lld.png\">occlusion map</a>",
                   u->unit, (long long)ex[i].seq, u->unit, (long long)ex[i].seq);
        sb_add(b, "</figcaption></figure>\n");
    }
    sb_add(b, "</div>\n");
    zf_db_example *bot = NULL;
    int nb = 0;
    if ((st = zf_db_bottomk_get(S->db, run, L->layer, u->unit, &bot, &nb))) {
        free(ex);
        return st;
    }
    if (nb > 0) {
        sb_add(b, "<h2>Bottom %d</h2>\n<p>The images with the unit's most negative values (each image's lowest, "
                  "before the ReLU; the lowest first).</p>\n", nb);
        if (L->conv && L->has_bot[r]) {
            /* only the patches: at its most negative the unit is cut by the ReLU, so its
             * deconvnet projection there is zero */
            sb_add(b, "<div class=\"ex\">\n");
            for (int i = 0; i < nb; i++) {
                sb_add(b, "<figure class=\"bottom\" data-rank=\"%d\"><img class=\"bottom\" "
                          "src=\"img/%d-%d-bottom.png\" alt=\"bottom patch %d\"><figcaption>%d. %.6g",
                       bot[i].rank, u->unit, bot[i].rank, bot[i].rank, bot[i].rank, bot[i].score);
                if (L->ri->run.classes > 0) {
                    char cls[256];
                    if ((st = zf_db_image_class(S->db, run, bot[i].seq, cls, sizeof cls))) {
                        free(bot);
                        free(ex);
                        return st;
                    }
                    sb_add(b, "<br><span class=\"class\">");
                    sb_esc(b, cls[0] ? cls : "(no class)");
                    sb_add(b, "</span>");
                }
                sb_add(b, "</figcaption></figure>\n");
            }
            sb_add(b, "</div>\n");
        }
        sb_add(b, "<table class=\"bottomk\"><thead><tr><th>rank<th>score<th>at (y, x)"
                  "<th class=\"l\">image</tr></thead>\n<tbody>\n");
        for (int i = 0; i < nb; i++) {
            sb_add(b, "<tr><td>%d<td>%.9g<td>(%d, %d)<td class=\"l\">", bot[i].rank, bot[i].score, bot[i].y, bot[i].x);
            sb_esc(b, base_name(bot[i].path));
            sb_add(b, "</tr>\n");
        }
        sb_add(b, "</tbody></table>\n");
    }
    free(bot);
    if (L->conv) {
        sb_add(b, "<h2>Filter</h2>\n");
        filter_svg(b, L->scan->net, L->li, u->unit, L->first_conv);
    }
    page_tail(b, "../../");
    free(ex);
    return b->oom ? zf_error(ZF_ERR_NOMEM, "out of memory") : ZF_OK;
}

static zf_status unit_page(layer_ctx *L, int r)
{
    sbuf b = {0};
    char rel[512];
    snprintf(rel, sizeof rel, "%lld/%s/%d.html", (long long)L->ri->run.id, L->layer, L->rows[r].unit);
    zf_status st = unit_html(L, r, &b);
    if (!st)
        st = put_page(L->S, rel, &b);
    free(b.p);
    return st;
}

static void layer_html(layer_ctx *L, const layer_sum *sum, sbuf *b)
{
    site *S = L->S;
    const int64_t run = L->ri->run.id;
    char title[160];
    snprintf(title, sizeof title, "%s, run %lld", L->layer, (long long)run);
    page_head(b, title, "../../");
    sb_add(b, "<nav><a rel=\"up\" href=\"../../index.html\">atlas</a></nav>\n<h1>");
    sb_esc(b, title);
    sb_add(b, "</h1>\n<p>%d units: %d dead (never positive), %d near-dead (active on fewer than %.3g of the "
               "images). Click a column to sort.</p>\n",
           sum->units, sum->dead, sum->near, S->o->min_active);
    if (L->conv) {
        sb_add(b, "<h2>Strongest projection of each unit</h2>\n<div class=\"grid\">\n");
        for (int r = 0; r < L->n_rows; r++) {
            int u = L->rows[r].unit;
            if (L->has_png[r])
                sb_add(b, "<a href=\"%d.html\"><img src=\"img/%d-1-deconv.png\" alt=\"unit %d\" loading=\"lazy\">%d</a>\n",
                       u, u, u, u);
            else
                sb_add(b, "<a href=\"%d.html\"><span class=\"none\"></span>%d</a>\n", u, u);
        }
        sb_add(b, "</div>\n");
    }
    sb_add(b, "<h2>Units</h2>\n<table class=\"sortable units\"><thead><tr><th>unit<th>active fraction"
               "<th>positive fraction<th>mean<th>max<th class=\"l\">state%s</tr></thead>\n<tbody>\n",
           L->n_sel > 0 ? "<th>selectivity<th class=\"l\">best class" : "");
    for (int r = 0; r < L->n_rows; r++) {
        const zf_db_unit_row *u = &L->rows[r];
        const char *flag = flag_of(u, S->o->min_active);
        sb_add(b, "<tr><td data-v=\"%d\"><a href=\"%d.html\">%d</a><td>%.9g<td>%.9g<td>%.9g<td>%.9g<td class=\"l%s\">%s",
               u->unit, u->unit, u->unit, u->active_fraction, u->positive_fraction, u->mean, u->max,
               *flag ? (flag[0] == 'd' ? " dead" : " near") : "", flag);
        if (L->n_sel > 0) {
            const zf_db_selectivity *sv = sel_of(L, u->unit);
            if (sv && sv->has_index)
                sb_add(b, "<td class=\"sel\">%.9g", sv->selectivity);
            else
                sb_add(b, "<td class=\"sel\">none");
            sb_add(b, "<td class=\"l best\">");
            sb_esc(b, sv && sv->best_class[0] ? sv->best_class : "");
        }
        sb_add(b, "</tr>\n");
    }
    sb_add(b, "</tbody></table>\n");
    page_tail(b, "../../");
}

static zf_status layer_page(layer_ctx *L, const layer_sum *sum)
{
    sbuf b = {0};
    char rel[512];
    snprintf(rel, sizeof rel, "%lld/%s/index.html", (long long)L->ri->run.id, L->layer);
    layer_html(L, sum, &b);
    zf_status st = put_page(L->S, rel, &b);
    free(b.p);
    return st;
}

/* The units of a conv layer to project: all, or the top_units strongest (by their best example). */
static zf_status chosen_units(site *S, zft_scan *scan, const char *layer, int n_rows, unsigned char *want)
{
    if (S->o->top_units <= 0 || S->o->top_units >= n_rows) {
        memset(want, 1, (size_t)n_rows);
        return ZF_OK;
    }
    memset(want, 0, (size_t)n_rows);
    int *units = malloc(sizeof *units * (size_t)S->o->top_units), got = 0;
    if (!units)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    zf_status st = zft_scan_strongest_units(scan, layer, S->o->top_units, units, &got);
    for (int i = 0; i < got && !st; i++)
        if (units[i] >= 0 && units[i] < n_rows)
            want[units[i]] = 1;
    free(units);
    return st;
}

enum { RENDER_BATCH = 16 };

/* A layer's counts; its rows must be units 0..n-1 (the page addresses depend on it). */
static zf_status summarise(site *S, const run_info *ri, const char *layer, const zf_db_unit_row *rows, int n,
                           int conv, layer_sum *sum)
{
    memset(sum, 0, sizeof *sum);
    snprintf(sum->name, sizeof sum->name, "%s", layer);
    sum->units = n;
    sum->conv = conv;
    for (int r = 0; r < n; r++) {
        const zf_db_unit_row *u = &rows[r];
        if (u->unit != r)
            return zf_error(ZF_ERR_ARG, "%s: run %lld %s: unit %d missing from unit_stats", zf_db_path(S->db),
                            (long long)ri->run.id, layer, r);
        const char *f = flag_of(u, S->o->min_active);
        sum->dead += f[0] == 'd';
        sum->near += f[0] == 'n';
        sum->mean_active += u->active_fraction / n;
        sum->max = r == 0 ? u->max : fmax(sum->max, u->max);
    }
    return ZF_OK;
}

static zf_status build_layer(site *S, zft_scan *scan, const run_info *ri, const char *layer, layer_sum *sum)
{
    layer_ctx L = {S, scan, ri, layer, -1, 0, 0, NULL, 0, NULL, NULL, NULL, 0};
    zf_net *net = scan->net;
    L.li = zf_net_find(net, layer);
    if (L.li < 0)
        return zf_error(ZF_ERR_ARG, "run %lld: '%s' is not a layer of %s", (long long)ri->run.id, layer, net->arch);
    L.conv = zf_net_find_conv(net, layer) >= 0;
    if (L.conv) {
        L.li = zf_net_find_conv(net, layer);
        int first = -1;
        for (int i = 0; i < net->n_layers && first < 0; i++)
            if (net->layers[i].op == ZF_OP_CONV)
                first = i;
        L.first_conv = first == L.li;
    }
    zf_status st = zf_db_layer_units(S->db, ri->run.id, layer, &L.rows, &L.n_rows);
    if (st)
        return st;
    unsigned char *want = calloc((size_t)L.n_rows + 1, 1);
    L.has_png = calloc((size_t)L.n_rows + 1, 1);
    L.has_bot = calloc((size_t)L.n_rows + 1, 1);
    int *todo = malloc(sizeof *todo * (size_t)(L.n_rows + 1));
    unit_pngs *pngs = calloc(RENDER_BATCH, sizeof *pngs);
    if (!want || !L.has_png || !L.has_bot || !todo || !pngs) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = summarise(S, ri, layer, L.rows, L.n_rows, L.conv, sum)) ||
        (st = zf_db_layer_selectivity(S->db, ri->run.id, layer, &L.sel, &L.n_sel)))
        goto out;
    zft_progress pr;
    /* a conv layer's units are counted twice: their projections, then their pages */
    const int pass = L.conv ? L.n_rows : 0;
    zft_progress_start(&pr, layer, pass + L.n_rows, "units");
    /* projections: stored ones are copied out, the others rendered in batches and stored */
    if (L.conv && (st = chosen_units(S, scan, layer, L.n_rows, want)))
        goto out;
    int n_todo = 0;
    for (int r = 0; r < L.n_rows && L.conv && !st; r++) {
        if (!want[r])
            continue;
        zf_db_example *ex = NULL;
        int n = 0, all = 0;
        if ((st = zf_db_topk_get(S->db, ri->run.id, layer, r, &ex, &n)))
            break;
        if (n > 9)
            n = 9;
        unit_pngs p;
        st = stored_pngs(S, ri->run.id, layer, r, ex, n, &p, &all);
        free(ex);
        if (st)
            break;
        if (n == 0)
            continue;
        if (all) {
            S->stats->reused += n;
            st = write_unit_pngs(&L, r, &p);
            unit_pngs_free(&p);
            zft_progress_update(&pr, r + 1);
        } else {
            todo[n_todo++] = r;
        }
    }
    for (int i = 0; i < n_todo && !st; i += RENDER_BATCH) {
        int m = n_todo - i < RENDER_BATCH ? n_todo - i : RENDER_BATCH;
        if ((st = render_units(S, scan, layer, todo + i, m, pngs)))
            break;
        for (int j = 0; j < m && !st; j++) {
            st = write_unit_pngs(&L, todo[i + j], &pngs[j]);
            unit_pngs_free(&pngs[j]);
        }
        zft_progress_update(&pr, todo[i + m - 1] + 1);
        if (!st && zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted");
    }
    if (L.conv && !st) /* the bottom-k patches, made and stored in one transaction */
        if (!(st = zf_db_begin(S->db))) {
            for (int r = 0; r < L.n_rows && !st; r++)
                if (want[r])
                    st = write_bottom_pngs(&L, r, 1);
            if (!st)
                st = zf_db_commit(S->db);
            else
                zf_db_rollback(S->db);
        }
    for (int r = 0; r < L.n_rows && !st; r++) {
        st = unit_page(&L, r);
        zft_progress_update(&pr, pass + r + 1);
        if (!st && zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted");
    }
    if (!st)
        st = layer_page(&L, sum);
    zft_progress_finish(&pr);
out:
    for (int j = 0; pngs && j < RENDER_BATCH; j++)
        unit_pngs_free(&pngs[j]);
    free(pngs);
    free(todo);
    free(want);
    free(L.has_png);
    free(L.has_bot);
    free(L.sel);
    free(L.rows);
    return st;
}

static int layer_chosen(const zft_site_opts *o, const char *layer)
{
    if (!o->layers)
        return 1;
    char buf[1024];
    const char *names[64];
    int k = zft_split_list(o->layers, buf, sizeof buf, names, 64);
    for (int i = 0; i < k; i++)
        if (!strcmp(names[i], layer))
            return 1;
    return 0;
}

static void index_run(sbuf *b, const run_info *ri, const layer_sum *sums, int n)
{
    sb_add(b, "<h2>Run %lld</h2>\n<p>", (long long)ri->run.id);
    sb_esc(b, ri->model.arch);
    sb_add(b, " (");
    sb_esc(b, ri->model.file[0] ? ri->model.file : ri->model.weights);
    sb_add(b, "), model sha256 %.16s, input %s; %lld of %lld images read (%lld failed) from ", ri->model.sha256,
           ri->model.input, (long long)ri->run.n_ok, (long long)ri->run.n_images, (long long)ri->run.n_failed);
    sb_esc(b, ri->run.images);
    sb_add(b, "; top %d per unit%s.</p>\n", ri->run.top_k, ri->run.complete ? "" : "; scan not finished");
    sb_add(b, "<table class=\"sortable layers\"><thead><tr><th class=\"l\">layer<th>units<th>dead<th>near-dead"
              "<th>mean active fraction<th>max</tr></thead>\n<tbody>\n");
    for (int i = 0; i < n; i++)
        sb_add(b, "<tr><td class=\"l\"><a href=\"%lld/%s/index.html\">%s</a><td>%d<td>%d<td>%d<td>%.4g<td>%.4g</tr>\n",
               (long long)ri->run.id, sums[i].name, sums[i].name, sums[i].units, sums[i].dead, sums[i].near,
               sums[i].mean_active, sums[i].max);
    sb_add(b, "</tbody></table>\n");
}

static int first_conv_of(const zf_net *net)
{
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_CONV)
            return i;
    return -1;
}

/* The kernels of the net's first conv layer as one grid, each scaled to its own largest |weight|
 * with zero mid-grey (colour for a colour net), as PNG bytes. */
static zf_status filters_png(const zf_net *net, void **png, size_t *len)
{
    int li = first_conv_of(net);
    if (li < 0)
        return zf_error(ZF_ERR_ARG, "%s has no conv layer", net->arch);
    const zf_layer *l = &net->layers[li];
    const int cin = l->in_c / (l->groups > 0 ? l->groups : 1), kh = l->win.kh, kw = l->win.kw, n = l->out_c;
    const int s = kh * 4 < 44 ? 44 / kh : 4, cols = (int)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
    const int cw = kw * s + 2, ch = kh * s + 2;
    zf_image *img = zf_image_new(cols * cw, rows * ch);
    if (!img)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    memset(img->rgb, 255, (size_t)img->w * img->h * 3);
    const size_t per = (size_t)kh * kw;
    for (int u = 0; u < n; u++) {
        const float *w = l->weight + (size_t)u * cin * per;
        float amax = 0;
        for (size_t i = 0; i < (size_t)cin * per; i++)
            amax = fmaxf(amax, fabsf(w[i]));
        for (int y = 0; y < kh * s; y++)
            for (int x = 0; x < kw * s; x++)
                for (int c = 0; c < 3; c++) {
                    int src = cin >= 3 ? (net->pre.order == ZF_COLOR_BGR ? 2 - c : c) : 0;
                    float v = amax > 0 ? w[(size_t)src * per + (size_t)(y / s) * kw + x / s] / amax : 0;
                    size_t at = ((size_t)((u / cols) * ch + 1 + y) * img->w + (size_t)(u % cols) * cw + 1 + x) * 3;
                    img->rgb[at + c] = (uint8_t)fminf(255, fmaxf(0, roundf(127.5f + 127.5f * v)));
                }
    }
    zf_status st = zf_db_png_encode(img, png, len);
    zf_image_free(img);
    return st;
}

static int run_has_layer(const run_info *ri, const zft_site_opts *o, const char *layer)
{
    char buf[512];
    const char *names[64];
    int k = zft_split_list(ri->run.layers, buf, sizeof buf, names, 64);
    for (int j = 0; j < k; j++)
        if (!strcmp(names[j], layer))
            return layer_chosen(o, layer);
    return 0;
}

/* compare.html: the first conv layer of every run (nets[i] of S->runs.r[i], NULL to leave it out)
 * side by side: its filters and, where the run scanned it, its units' counts. */
static zf_status compare_html(site *S, zf_net *const *nets, sbuf *b)
{
    page_head(b, "zfviz atlas: first layers compared", "");
    sb_add(b, "<nav><a rel=\"up\" href=\"index.html\">atlas</a></nav>\n<h1>First layers compared</h1>\n"
              "<p>The kernels of each run's first conv layer, each scaled to its own largest |weight| with zero "
              "mid-grey.</p>\n<div class=\"ex\">\n");
    zf_status st = ZF_OK;
    for (int i = 0; i < S->runs.n && !st; i++) {
        const run_info *ri = &S->runs.r[i];
        int li = nets[i] ? first_conv_of(nets[i]) : -1;
        if (li < 0)
            continue;
        const char *name = nets[i]->layers[li].name;
        sb_add(b, "<figure class=\"compare\"><img class=\"filters\" src=\"%lld/first-filters.png\" alt=\"run %lld "
                  "filters\"><figcaption>run %lld: ",
               (long long)ri->run.id, (long long)ri->run.id, (long long)ri->run.id);
        sb_esc(b, ri->model.arch);
        sb_add(b, " %s", name);
        if (run_has_layer(ri, S->o, name) && safe_name(name)) {
            zf_db_unit_row *rows = NULL;
            int nr = 0;
            layer_sum sum;
            if (!(st = zf_db_layer_units(S->db, ri->run.id, name, &rows, &nr)) &&
                !(st = summarise(S, ri, name, rows, nr, 1, &sum)))
                sb_add(b, "<br><a href=\"%lld/%s/index.html\">%d units</a>: %d dead, %d near-dead, mean active "
                          "fraction %.4g",
                       (long long)ri->run.id, name, sum.units, sum.dead, sum.near, sum.mean_active);
            free(rows);
        }
        sb_add(b, "</figcaption></figure>\n");
    }
    sb_add(b, "</div>\n");
    page_tail(b, "");
    return !st && b->oom ? zf_error(ZF_ERR_NOMEM, "out of memory") : st;
}

/* The runs (those o->run picks) and their chosen layers' counts, read again from the database. */
static zf_status index_html(site *S, int compare, sbuf *b)
{
    const zft_site_opts *o = S->o;
    page_head(b, "zfviz atlas", "");
    sb_add(b, "<h1>zfviz atlas</h1>\n<p>");
    sb_esc(b, o->dbpath);
    sb_add(b, ": %d scan run%s. A layer's page lists its units; a unit's page shows its strongest examples "
              "beside their deconvnet projections (Zeiler &amp; Fergus).</p>\n",
           S->runs.n, S->runs.n == 1 ? "" : "s");
    if (compare)
        sb_add(b, "<p><a href=\"compare.html\">The runs' first layers side by side</a></p>\n");
    if (S->served)
        sb_add(b, "<form method=\"post\" action=\"forward\" enctype=\"multipart/form-data\"><p>An image of "
                  "your own through the first run's model (JPEG or PNG, up to %d MB): <input type=\"file\" "
                  "name=\"image\" accept=\"image/jpeg,image/png\"> <button>Run</button></p></form>\n",
               ZFT_UPLOAD_MAX >> 20);
    zf_status st = ZF_OK;
    for (int i = 0; i < S->runs.n && !st; i++) {
        const run_info *ri = &S->runs.r[i];
        if (o->run && ri->run.id != o->run)
            continue;
        if (ri->run.n_ok == 0) {
            sb_add(b, "<h2>Run %lld</h2>\n<p>No image of this run could be read.</p>\n", (long long)ri->run.id);
            continue;
        }
        char buf[512];
        const char *names[64];
        int k = zft_split_list(ri->run.layers, buf, sizeof buf, names, 64), n = 0;
        layer_sum sums[64];
        for (int j = 0; j < k && !st; j++) {
            if (!layer_chosen(o, names[j]) || !safe_name(names[j]))
                continue;
            zf_db_unit_row *rows = NULL;
            int nr = 0;
            if (!(st = zf_db_layer_units(S->db, ri->run.id, names[j], &rows, &nr)) &&
                !(st = summarise(S, ri, names[j], rows, nr, 0, &sums[n])))
                n++;
            free(rows);
        }
        index_run(b, ri, sums, n);
    }
    page_tail(b, "");
    return !st && b->oom ? zf_error(ZF_ERR_NOMEM, "out of memory") : st;
}

/* The database at o->dbpath (read-write to store renderings, or read-only) and its runs. */
static zf_status site_open(site *S, const zft_site_opts *o, zft_site_stats *stats, int readwrite)
{
    memset(S, 0, sizeof *S);
    S->o = o;
    S->stats = stats;
    zf_status st = zft_db_open(o->dbpath, readwrite, &S->db);
    if (!st)
        st = zf_db_runs(S->db, collect_run, &S->runs);
    if (!st && S->runs.oom)
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
    if (st)
        return st;
    int found = 0;
    for (int i = 0; i < S->runs.n; i++)
        found |= !o->run || S->runs.r[i].run.id == o->run;
    if (!found)
        return o->run ? zf_error(ZF_ERR_ARG, "%s: no run %lld", o->dbpath, (long long)o->run)
                      : zf_error(ZF_ERR_ARG, "%s: no scan runs", o->dbpath);
    return ZF_OK;
}

static void site_close(site *S)
{
    for (int i = 0; i < SEEN_IMAGES; i++)
        free(S->seen[i].rgb);
    free(S->runs.r);
    zf_db_close(S->db);
    memset(S, 0, sizeof *S);
}

/* The net of run ri (as recorded, or the model options given), in scan with the run's rows. */
static zf_status scan_of(site *S, const run_info *ri, zft_scan *scan)
{
    memset(scan, 0, sizeof *scan);
    scan->run = ri->run;
    scan->model = ri->model;
    scan->reroot = S->o->reroot;
    scan->device = S->o->device;
    zf_status st = zft_load_recorded_model(&ri->model, ri->run.id, &S->o->model, &scan->net);
    scan->db = S->db;
    return st;
}

static void scan_release(zft_scan *scan)
{
    scan->db = NULL; /* the site's */
    zft_scan_close(scan);
}

zf_status zft_site_build(const zft_site_opts *o, zft_site_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    site S;
    sbuf idx = {0}, cmp = {0};
    zft_scan *scans = NULL;
    zf_net **nets = NULL;
    int n_nets = 0;
    zf_status st = site_open(&S, o, stats, 1);
    if (!st && (!(scans = calloc((size_t)S.runs.n + 1, sizeof *scans)) ||
                !(nets = calloc((size_t)S.runs.n + 1, sizeof *nets))))
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
    if (!st && !(st = put_file(&S, "atlas.css", zft_site_css, strlen(zft_site_css), 2)))
        st = put_file(&S, "atlas.js", zft_site_js, strlen(zft_site_js), 2);
    for (int i = 0; i < S.runs.n && !st; i++) {
        const run_info *ri = &S.runs.r[i];
        if ((o->run && ri->run.id != o->run) || ri->run.n_ok == 0)
            continue;
        char buf[512];
        const char *names[64];
        int k = zft_split_list(ri->run.layers, buf, sizeof buf, names, 64);
        zft_scan *scan = &scans[i];
        st = scan_of(&S, ri, scan);
        for (int j = 0; j < k && !st; j++) {
            if (!layer_chosen(o, names[j]))
                continue;
            if (!safe_name(names[j])) {
                st = zf_error(ZF_ERR_ARG, "run %lld: layer name '%s' cannot name a folder", (long long)ri->run.id,
                              names[j]);
                break;
            }
            layer_sum sum;
            st = build_layer(&S, scan, ri, names[j], &sum);
        }
        if (!st && first_conv_of(scan->net) >= 0) {
            void *png = NULL;
            size_t len = 0;
            char rel[64];
            snprintf(rel, sizeof rel, "%lld/first-filters.png", (long long)ri->run.id);
            if (!(st = filters_png(scan->net, &png, &len)))
                st = put_png(&S, rel, png, len);
            free(png);
            nets[i] = scan->net;
            n_nets++;
        }
    }
    if (!st && n_nets > 1 && !(st = compare_html(&S, nets, &cmp)))
        st = put_page(&S, "compare.html", &cmp);
    if (!st && !(st = index_html(&S, n_nets > 1, &idx)))
        st = put_page(&S, "index.html", &idx);
    for (int i = 0; scans && i < S.runs.n; i++)
        scan_release(&scans[i]);
    free(scans);
    free(nets);
    free(idx.p);
    free(cmp.p);
    site_close(&S);
    return st;
}

/* ---- serving the same pages from the database (zfviz serve) ---- */

struct zft_atlas {
    zft_site_opts o;
    site S;
    zft_site_stats stats;
    zft_scan *scans; /* per run of S.runs; net NULL for a run with no images */
    /* the last unit projected on demand (its pictures are asked for one by one) */
    int64_t c_run;
    char c_layer[32];
    int c_unit;
    unit_pngs c_pngs;
};

/* The pictures of a unit whose renderings are not stored, projected now (not stored: the
 * database is read-only here) and kept until another unit's are asked for. */
static zf_status atlas_render(zft_atlas *a, zft_scan *scan, const char *layer, int unit, const unit_pngs **out)
{
    if (a->c_run == scan->run.id && a->c_unit == unit && !strcmp(a->c_layer, layer)) {
        *out = &a->c_pngs;
        return ZF_OK;
    }
    unit_pngs_free(&a->c_pngs);
    a->c_run = 0;
    zft_sheet sh;
    zf_status st = zft_sheet_build(&sh, scan, layer, &unit, 1, a->o.lrn_backward);
    for (int i = 0; !st && i < sh.units[0].n; i++) {
        st = patch_pngs(&sh.units[0].top[i], a->c_pngs.png[i], a->c_pngs.len[i]);
        a->c_pngs.n = i + 1;
    }
    zft_sheet_free(&sh);
    if (st) {
        unit_pngs_free(&a->c_pngs);
        return st;
    }
    a->c_run = scan->run.id;
    snprintf(a->c_layer, sizeof a->c_layer, "%s", layer);
    a->c_unit = unit;
    *out = &a->c_pngs;
    return ZF_OK;
}

static int reply(zft_site_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* img/<unit>-<rank>-bottom.png: the stored bottom-k patch, or one cut now (not stored). */
static int atlas_bottom(zft_atlas *a, zft_scan *scan, const layer_ctx *L, int unit, int rank, zft_site_reply *r)
{
    if (!L->conv)
        return reply(r, 404, "%s is fully connected: its bottom-k has no patches", L->layer);
    zf_db_example *bot = NULL;
    int nb = 0;
    zf_status st = ZF_OK;
    if (unit >= 0 && unit < L->scan->net->layers[L->li].out_c)
        st = zf_db_bottomk_get(a->S.db, scan->run.id, L->layer, unit, &bot, &nb);
    if (!st && rank > nb) {
        free(bot);
        return reply(r, 404, "%s unit %d has no bottom-k example of rank %d", L->layer, unit, rank);
    }
    void *png = NULL;
    size_t len = 0;
    int missing = 0;
    if (!st)
        st = zf_db_rendering_find(a->S.db, scan->run.id, L->layer, unit, rank, "bottom-patch",
                                  bot[rank - 1].image_id, &png, &len);
    if (!st && !png)
        st = bottom_png(&a->S, scan, &bot[rank - 1], &png, &len, &missing);
    free(bot);
    if (st)
        return reply(r, 500, "%s", zf_last_error());
    r->body = png;
    r->len = len;
    r->type = "image/png";
    return r->status = 200;
}

/* A whole decimal number of at most 9 digits, ending at *end; -1 otherwise. */
static long number_at(const char *s, const char **end);

/* A query value: absent (def), or a whole number in [lo, hi]; -1 (with the reply made) otherwise. */
static long query_number(const char *v, const char *name, long def, long lo, long hi, zft_site_reply *r)
{
    if (!v)
        return def;
    const char *end;
    long n = number_at(v, &end);
    if (n < 0 || *end || n < lo || n > hi) {
        reply(r, 400, "%s must be a whole number from %ld to %ld, got '%.40s'", name, lo, hi, v);
        return -1;
    }
    return n;
}

/* The most positions an occlusion map served on demand may have: it holds every other request. */
enum { OCCLUDE_MAX_POSITIONS = 4096 };

/* On-demand work on the scanned image `seq` of the scan's run (zfviz serve): the deconvnet
 * projection of conv unit `unit` of layer `li` at its strongest position on the whole input
 * (what = 'd'), or the occlusion map of that unit's rectified map total, or of class `unit`'s
 * probability when li < 0 (what = 'o'), as a PNG; with the model the run recorded. */
static int atlas_work(zft_atlas *a, zft_scan *scan, int li, long unit, char what, long seq,
                      const zft_site_query *q, zft_site_reply *r)
{
    zf_net *net = scan->net;
    const int H = net->in_h, W = net->in_w;
    int patch = 0, stride = 0;
    if (what == 'o') {
        zft_occlusion_defaults(net, &patch, &stride);
        const int side = H < W ? H : W;
        if ((patch = (int)query_number(q ? q->patch : NULL, "patch", patch, 1, side, r)) < 0 ||
            (stride = (int)query_number(q ? q->stride : NULL, "stride", stride, 1, side, r)) < 0)
            return r->status;
        long pos = (long)zf_occlusion_count(H, patch, stride) * zf_occlusion_count(W, patch, stride);
        if (pos > OCCLUDE_MAX_POSITIONS)
            return reply(r, 400, "patch %d, stride %d give %ld positions on the %dx%d input; at most %d are served "
                         "(a larger stride)", patch, stride, pos, W, H, OCCLUDE_MAX_POSITIONS);
    } else if (q && (q->patch || q->stride)) {
        return reply(r, 400, "patch and stride are for occlusion maps, not projections");
    }
    zf_db_example e;
    int found = 0;
    zf_status st = zf_db_run_image(a->S.db, scan->run.id, seq, &e, &found);
    if (st)
        return reply(r, 500, "%s", zf_last_error());
    if (found == 0)
        return reply(r, 404, "run %lld has no image %ld (its images are 0-%lld)", (long long)scan->run.id, seq,
                     (long long)(scan->run.seq0 + scan->run.n_images - 1));
    if (found == 2)
        return reply(r, 404, "image %ld of run %lld could not be read when it was scanned", seq,
                     (long long)scan->run.id);
    const size_t in_size = (size_t)zf_net_in_size(net);
    float *in = malloc(sizeof *in * in_size), *proj = malloc(sizeof *proj * in_size);
    zf_image *img = NULL;
    zf_occlusion_result *res = NULL;
    if (!in || !proj) {
        free(in);
        free(proj);
        return reply(r, 503, "out of memory");
    }
    if (zft_example_load(net, &e, &scan->reroot, in)) {
        reply(r, 404, "%s", zf_last_error());
        goto out;
    }
    if (what == 'd') {
        int chan = (int)unit, y = -1, x = -1;
        zft_device dev = {0};
        zf_deconv_req req = {li, ZF_DECONV_UNIT, a->o.lrn_backward, &chan, &y, &x};
        if ((st = zf_net_reserve(net, 1)) || (st = zft_device_deconv(&dev, net, in, 1, &req, proj)))
            goto fail;
        zf_viz_proj_to_rgb(proj, &net->pre, H, W);
        if (!(img = zf_image_new(W, H)))
            goto nomem;
        proj_to_image(img, proj, net->in_c == 1 ? 1 : 3);
    } else {
        zf_occlusion_params p;
        zf_occlusion_params_default(&p);
        p.patch = patch;
        p.stride = stride;
        if (li >= 0) {
            p.layer = li;
            p.channel = (int)unit;
        } else {
            p.cls = (int)unit;
        }
        if ((st = zf_occlusion_run(net, in, &p, &res)))
            goto fail;
        const float *map = li >= 0 ? res->feature : res->prob;
        const int n = res->rows * res->cols;
        float lo = map[0], hi = map[0];
        for (int i = 1; i < n; i++) {
            lo = fminf(lo, map[i]);
            hi = fmaxf(hi, map[i]);
        }
        if (!(img = zf_image_new(res->cols, res->rows)))
            goto nomem;
        for (int i = 0; i < n; i++) /* the map's lowest black, its highest white */
            memset(img->rgb + (size_t)i * 3, hi > lo ? (int)lroundf(255 * ((map[i] - lo) / (hi - lo))) : 0, 3);
    }
    if ((st = zf_db_png_encode(img, &r->body, &r->len)))
        goto fail;
    r->type = "image/png";
    r->status = 200;
    goto out;
nomem:
    reply(r, 503, "out of memory");
    goto out;
fail:
    if (st == ZF_ERR_ARG)
        reply(r, 400, "%s", zf_last_error());
    else
        reply(r, 500, "%s", zf_last_error());
out:
    zf_occlusion_result_free(res);
    zf_image_free(img);
    free(in);
    free(proj);
    return r->status;
}

/* <unit>/deconv/<seq>.png or <unit>/occlude/<seq>.png after the layer (or class/) of the address;
 * 0 when `rest` is not of that form. */
static int work_address(const char *rest, long *unit, char *what, long *seq)
{
    const char *p;
    *unit = number_at(rest, &p);
    if (*unit < 0 || *p != '/')
        return 0;
    if (!strncmp(p + 1, "deconv/", 7))
        *what = 'd';
    else if (!strncmp(p + 1, "occlude/", 8))
        *what = 'o';
    else
        return 0;
    *seq = number_at(p + (*what == 'd' ? 8 : 9), &p);
    return *seq >= 0 && !strcmp(p, ".png");
}

zf_status zft_atlas_open(const zft_site_opts *o, zft_atlas **out)
{
    *out = NULL;
    zft_atlas *a = calloc(1, sizeof *a);
    if (!a)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    a->o = *o;
    zf_status st = site_open(&a->S, &a->o, &a->stats, 0);
    a->S.served = 1;
    if (!st && !(a->scans = calloc((size_t)a->S.runs.n + 1, sizeof *a->scans)))
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < a->S.runs.n && !st; i++) {
        const run_info *ri = &a->S.runs.r[i];
        if ((o->run && ri->run.id != o->run) || ri->run.n_ok == 0)
            continue;
        st = scan_of(&a->S, ri, &a->scans[i]);
    }
    if (st) {
        zft_atlas_free(a);
        return st;
    }
    *out = a;
    return ZF_OK;
}

void zft_atlas_free(zft_atlas *a)
{
    if (!a)
        return;
    for (int i = 0; a->scans && i < a->S.runs.n; i++)
        scan_release(&a->scans[i]);
    free(a->scans);
    unit_pngs_free(&a->c_pngs);
    site_close(&a->S);
    free(a);
}

static int reply(zft_site_reply *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->status = status;
    return status;
}

/* The page built in b as the reply (200), which then owns it; 503 when building it ran out of memory. */
static int reply_page(zft_site_reply *r, sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return reply(r, 503, "out of memory");
    }
    r->body = b->p;
    r->len = b->len;
    r->type = "text/html; charset=utf-8";
    return r->status = 200;
}

/* A whole decimal number of at most 9 digits, ending at *end; -1 otherwise. */
static long number_at(const char *s, const char **end)
{
    long v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 9) {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    *end = s;
    return digits && !(*s >= '0' && *s <= '9') ? v : -1;
}

int zft_atlas_get(zft_atlas *a, const char *url, const zft_site_query *query, zft_site_reply *r)
{
    memset(r, 0, sizeof *r);
    site *S = &a->S;
    if (url[0] != '/')
        return reply(r, 400, "the path must start with /");
    if (strlen(url) > 256)
        return reply(r, 414, "path too long");
    for (const char *c = url; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '/' ||
              *c == '_' || *c == '-' || *c == '.'))
            return reply(r, 400, "bad character in the path");
    if (strstr(url, "..") || strstr(url, "//") || strstr(url, "/."))
        return reply(r, 400, "no such path in the atlas: '..', '//' and hidden names are refused");
    if (!strcmp(url, "/atlas.css") || !strcmp(url, "/atlas.js")) {
        const char *text = url[7] == 'c' ? zft_site_css : zft_site_js;
        r->body = strdup(text);
        r->len = strlen(text);
        r->type = url[7] == 'c' ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
        return r->body ? (r->status = 200) : reply(r, 503, "out of memory");
    }
    sbuf b = {0};
    zf_status st = ZF_OK;
    int n_nets = 0;
    zf_net **nets = calloc((size_t)S->runs.n + 1, sizeof *nets);
    if (!nets)
        return reply(r, 503, "out of memory");
    for (int i = 0; i < S->runs.n; i++)
        if (a->scans[i].net && first_conv_of(a->scans[i].net) >= 0) {
            nets[i] = a->scans[i].net;
            n_nets++;
        }
    if (!strcmp(url, "/") || !strcmp(url, "/index.html") || (n_nets > 1 && !strcmp(url, "/compare.html"))) {
        st = url[1] == 'c' ? compare_html(S, nets, &b) : index_html(S, n_nets > 1, &b);
        free(nets);
        if (st)
            goto fail;
        goto page;
    }
    free(nets);
    /* /<run>/<layer>/(index.html | <unit>.html | img/<unit>-<rank>-<kind>.png) */
    const char *p;
    long run = number_at(url + 1, &p);
    if (run < 1 || *p != '/')
        return reply(r, 404, "no such page: the atlas has /, /<run>/<layer>/ and /<run>/<layer>/<unit>.html");
    int ri_index = -1;
    for (int i = 0; i < S->runs.n; i++)
        if (S->runs.r[i].run.id == run && a->scans[i].net)
            ri_index = i;
    if (ri_index < 0)
        return reply(r, 404, "no run %ld in this atlas", run);
    if (!strcmp(p, "/first-filters.png")) {
        if (first_conv_of(a->scans[ri_index].net) < 0)
            return reply(r, 404, "run %ld's net has no conv layer", run);
        if ((st = filters_png(a->scans[ri_index].net, &r->body, &r->len)))
            goto fail;
        r->type = "image/png";
        return r->status = 200;
    }
    const char *lname = p + 1, *slash = strchr(lname, '/');
    if (!strncmp(lname, "class/", 6)) { /* /<run>/class/<k>/occlude/<seq>.png */
        long k, seq;
        char what;
        if (!work_address(lname + 6, &k, &what, &seq) || what != 'o')
            return reply(r, 404, "no such page: a class has /<run>/class/<k>/occlude/<seq>.png");
        const zf_net *net = a->scans[ri_index].net;
        const zf_layer *last = &net->layers[net->n_layers - 1];
        const long classes = (long)last->out_c * last->out_h * last->out_w;
        if (k >= classes)
            return reply(r, 404, "%s has classes 0-%ld; no class %ld", net->arch, classes - 1, k);
        return atlas_work(a, &a->scans[ri_index], -1, k, 'o', seq, query, r);
    }
    char layer[32];
    if (!slash || slash == lname || (size_t)(slash - lname) >= sizeof layer)
        return reply(r, 404, "no such page");
    memcpy(layer, lname, (size_t)(slash - lname));
    layer[slash - lname] = 0;
    const run_info *ri = &S->runs.r[ri_index];
    char buf[512];
    const char *names[64];
    int k = zft_split_list(ri->run.layers, buf, sizeof buf, names, 64), has = 0;
    for (int j = 0; j < k; j++)
        has |= !strcmp(names[j], layer);
    if (!has || !layer_chosen(&a->o, layer) || !safe_name(layer))
        return reply(r, 404, "run %ld has no layer '%s' in this atlas", run, layer);
    const char *rest = slash + 1;
    zft_scan *scan = &a->scans[ri_index];
    layer_ctx L = {S, scan, ri, layer, zf_net_find(scan->net, layer), 0, 0, NULL, 0, NULL, NULL, NULL, 0};
    if (L.li < 0)
        return reply(r, 404, "'%s' is not a layer of %s", layer, scan->net->arch);
    L.conv = zf_net_find_conv(scan->net, layer) >= 0;
    if (L.conv) {
        L.li = zf_net_find_conv(scan->net, layer);
        int first = -1;
        for (int i = 0; i < scan->net->n_layers && first < 0; i++)
            if (scan->net->layers[i].op == ZF_OP_CONV)
                first = i;
        L.first_conv = first == L.li;
    }
    long w_unit, w_seq;
    char what;
    if (work_address(rest, &w_unit, &what, &w_seq)) {
        if (!L.conv)
            return reply(r, 404, "%s is fully connected: projections and occlusion maps are of conv units", layer);
        if (w_unit >= scan->net->layers[L.li].out_c)
            return reply(r, 404, "%s has units 0-%d; no unit %ld", layer, scan->net->layers[L.li].out_c - 1, w_unit);
        return atlas_work(a, scan, L.li, w_unit, what, w_seq, query, r);
    }
    if (!strncmp(rest, "img/", 4)) {
        const char *q;
        long unit = number_at(rest + 4, &q), rank = -1;
        if (unit >= 0 && *q == '-')
            rank = number_at(q + 1, &q);
        int kind = -1;
        if (rank >= 1 && *q == '-')
            kind = !strcmp(q + 1, "deconv.png") ? 0 : !strcmp(q + 1, "patch.png") ? 1 : !strcmp(q + 1, "bottom.png") ? 2 : -1;
        if (kind < 0)
            return reply(r, 404, "no such picture: img/<unit>-<rank>-deconv.png, -patch.png or -bottom.png");
        if (kind == 2)
            return atlas_bottom(a, scan, &L, (int)unit, (int)rank, r);
        zf_db_example *ex = NULL;
        int n = 0;
        if ((st = zf_db_topk_get(S->db, run, layer, (int)unit, &ex, &n)))
            goto fail;
        void *png = NULL;
        size_t len = 0;
        if (rank <= n)
            st = zf_db_rendering_find(S->db, run, layer, (int)unit, (int)rank, kinds[kind], ex[rank - 1].image_id,
                                      &png, &len);
        free(ex);
        if (st)
            goto fail;
        if (!png && L.conv && rank <= n && rank <= 9) {
            const unit_pngs *up = NULL;
            if ((st = atlas_render(a, scan, layer, (int)unit, &up)))
                goto fail;
            if (rank <= up->n && (png = malloc(up->len[rank - 1][kind]))) {
                memcpy(png, up->png[rank - 1][kind], up->len[rank - 1][kind]);
                len = up->len[rank - 1][kind];
            }
        }
        if (!png)
            return reply(r, 404, "%s unit %ld has no example of rank %ld with a %s picture", layer, unit, rank,
                         kinds[kind]);
        r->body = png;
        r->len = len;
        r->type = "image/png";
        return r->status = 200;
    }
    if ((st = zf_db_layer_units(S->db, run, layer, &L.rows, &L.n_rows)))
        goto fail;
    L.has_png = calloc((size_t)L.n_rows + 1, 1);
    L.has_bot = calloc((size_t)L.n_rows + 1, 1);
    layer_sum sum;
    if (!L.has_png || !L.has_bot) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto fail_rows;
    }
    if ((st = summarise(S, ri, layer, L.rows, L.n_rows, L.conv, &sum)) ||
        (st = zf_db_layer_selectivity(S->db, run, layer, &L.sel, &L.n_sel)))
        goto fail_rows;
    if (!strcmp(rest, "") || !strcmp(rest, "index.html")) {
        /* the thumbnails: units whose strongest example's projection is stored */
        for (int u = 0; u < L.n_rows && L.conv && !st; u++) {
            zf_db_example *ex = NULL;
            int n = 0;
            void *png = NULL;
            size_t len = 0;
            if (!(st = zf_db_topk_get(S->db, run, layer, u, &ex, &n)) && n > 0)
                st = zf_db_rendering_find(S->db, run, layer, u, ex[0].rank, "deconv", ex[0].image_id, &png, &len);
            L.has_png[u] = png != NULL;
            free(png);
            free(ex);
        }
        if (!st)
            layer_html(&L, &sum, &b);
    } else {
        const char *q;
        long unit = number_at(rest, &q);
        if (unit < 0 || strcmp(q, ".html") || unit >= L.n_rows) {
            free(L.rows);
            free(L.has_png);
            free(L.has_bot);
            free(L.sel);
            return reply(r, 404, "no such unit page in %s (units 0-%d)", layer, L.n_rows - 1);
        }
        if (L.conv) { /* stored, or projected (bottom patches cut) when the pictures are asked for */
            zf_db_example *ex = NULL;
            int n = 0;
            st = zf_db_topk_get(S->db, run, layer, (int)unit, &ex, &n);
            L.has_png[unit] = n > 0;
            free(ex);
            ex = NULL;
            if (!st)
                st = zf_db_bottomk_get(S->db, run, layer, (int)unit, &ex, &n);
            L.has_bot[unit] = n > 0;
            free(ex);
        }
        if (!st)
            st = unit_html(&L, (int)unit, &b);
    }
fail_rows:
    free(L.rows);
    free(L.has_png);
    free(L.has_bot);
    free(L.sel);
    if (st)
        goto fail;
page:
    return reply_page(r, &b);
fail:
    free(b.p);
    return reply(r, 500, "%s", zf_last_error());
}

typedef struct unit_val {
    int unit;
    float v;
} unit_val;

static int by_val(const void *a, const void *b)
{
    const unit_val *x = a, *y = b;
    return x->v != y->v ? (x->v < y->v ? 1 : -1) : x->unit - y->unit;
}

int zft_atlas_forward(zft_atlas *a, const uint8_t *bytes, size_t len, zft_site_reply *r)
{
    memset(r, 0, sizeof *r);
    site *S = &a->S;
    int ri_index = -1;
    for (int i = 0; i < S->runs.n && ri_index < 0; i++)
        if (a->scans[i].net)
            ri_index = i;
    if (ri_index < 0)
        return reply(r, 404, "no run of this atlas has a model to run");
    zft_scan *scan = &a->scans[ri_index];
    const run_info *ri = &S->runs.r[ri_index];
    zf_net *net = scan->net;
    zf_image *img = NULL;
    if (zf_image_decode(bytes, len, "the upload", &img))
        return reply(r, 415, "%s", zf_last_error());
    zf_status st = zf_net_reserve(net, 1);
    if (!st)
        st = zf_image_to_input(net->input, img, &net->pre, net->in_h, net->in_w);
    zf_image_free(img);
    if (!st)
        st = zf_values_check_finite(net->input, (size_t)zf_net_in_size(net), "the upload", NULL);
    if (st)
        return reply(r, 400, "%s", zf_last_error());
    if ((st = zf_net_forward(net, NULL, 1)))
        return reply(r, 500, "%s", zf_last_error());
    sbuf b = {0};
    page_head(&b, "zfviz atlas: an uploaded image", "");
    sb_add(&b, "<nav><a rel=\"up\" href=\"index.html\">atlas</a></nav>\n<h1>An uploaded image through run %lld (",
           (long long)ri->run.id);
    sb_esc(&b, ri->model.arch);
    sb_add(&b, ")</h1>\n");
    const zf_layer *last = &net->layers[net->n_layers - 1];
    const int classes = last->out_c * last->out_h * last->out_w;
    unit_val *uv = malloc(sizeof *uv * (size_t)(classes > 4096 ? classes : 4096));
    if (!uv) {
        free(b.p);
        return reply(r, 503, "out of memory");
    }
    const float *out = zf_net_act(net, net->n_layers - 1);
    for (int k = 0; k < classes; k++)
        uv[k] = (unit_val){k, out[k]};
    qsort(uv, (size_t)classes, sizeof *uv, by_val);
    sb_add(&b, "<h2>Top classes</h2>\n<table class=\"classes\"><thead><tr><th class=\"l\">class<th>output</tr></thead>"
               "<tbody>\n");
    for (int k = 0; k < 5 && k < classes; k++) {
        char name[256];
        sb_add(&b, "<tr><td class=\"l\">");
        sb_esc(&b, zft_class_text(name, sizeof name, net, uv[k].unit));
        sb_add(&b, "<td>%.6g</tr>\n", uv[k].v);
    }
    sb_add(&b, "</tbody></table>\n");
    char buf[512];
    const char *names[64];
    int nl = zft_split_list(ri->run.layers, buf, sizeof buf, names, 64);
    for (int j = 0; j < nl; j++) {
        int li = zf_net_find(net, names[j]);
        if (li < 0 || !layer_chosen(&a->o, names[j]) || !safe_name(names[j]))
            continue;
        const zf_layer *l = &net->layers[li];
        const int plane = l->out_h * l->out_w, n = l->out_c;
        if (n > 4096)
            continue;
        const float *act = zf_net_act(net, li);
        for (int u = 0; u < n; u++) {
            float m = act[(size_t)u * plane];
            for (int i = 1; i < plane; i++)
                m = fmaxf(m, act[(size_t)u * plane + i]);
            uv[u] = (unit_val){u, m};
        }
        qsort(uv, (size_t)n, sizeof *uv, by_val);
        sb_add(&b, "<h2>%s: strongest units</h2>\n<p>", names[j]);
        for (int k = 0; k < 9 && k < n; k++)
            sb_add(&b, "<a class=\"unit\" href=\"%lld/%s/%d.html\">%d</a> (%.4g)%s", (long long)ri->run.id, names[j],
                   uv[k].unit, uv[k].unit, uv[k].v, k + 1 < 9 && k + 1 < n ? ", " : "");
        sb_add(&b, "</p>\n");
    }
    free(uv);
    page_tail(&b, "");
    return reply_page(r, &b);
}
