/* Small plotting pieces: colour bars, round tick values, axes with labels, legends. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"

int zfv_ticks(double lo, double hi, int max, double *ticks) { return zf_viz_ticks(lo, hi, max, 0, ticks); }

int zfv_ticks_ex(double lo, double hi, int max, int integer, double *ticks)
{
    return zf_viz_ticks(lo, hi, max, integer, ticks);
}

int zf_viz_ticks(double lo, double hi, int max, int integer, double *ticks)
{
    if (!(hi > lo) || max < 2) {
        ticks[0] = lo;
        return 1;
    }
    double raw = (hi - lo) / (max - 1);
    double mag = pow(10, floor(log10(raw)));
    double step = mag;
    static const double mult[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++) {
        step = mult[i] * mag;
        if (integer && (step < 1 || step != floor(step)))
            continue;
        if ((floor(hi / step) - ceil(lo / step)) + 1 <= max)
            break;
    }
    if (integer && step < 1)
        step = 1;
    int n = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && n < max; v += step)
        ticks[n++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    return n;
}

/* Drops the zeros that end a decimal fraction ("0.50" -> "0.5", "1.00" -> "1") and the sign of a
 * zero ("-0" -> "0"). */
static void trim_number(char *buf, size_t len)
{
    char *e = strpbrk(buf, "eE");
    char exp[16] = "";
    if (e) {
        snprintf(exp, sizeof exp, "%s", e);
        *e = 0;
    }
    if (strchr(buf, '.')) {
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '0')
            buf[--n] = 0;
        if (n > 0 && buf[n - 1] == '.')
            buf[--n] = 0;
    }
    if (!strcmp(buf, "-0"))
        memmove(buf, buf + 1, 2);
    if (e) {
        /* "e-05" -> "e-5", "e+06" -> "e6". */
        char *p = exp + 1;
        int neg = *p == '-';
        if (*p == '-' || *p == '+')
            p++;
        while (*p == '0' && p[1])
            p++;
        size_t n = strlen(buf);
        if (n + 1 < len)
            snprintf(buf + n, len - n, "e%s%.8s", neg ? "-" : "", p);
    }
}

void zf_viz_tick_label(char *buf, size_t len, double v, double step)
{
    if (len == 0)
        return;
    step = fabs(step);
    if (v == 0 || (step > 0 && fabs(v) < step * 1e-9)) {
        snprintf(buf, len, "0");
        return;
    }
    /* Decimals that tell neighbouring ticks apart: those of the step (one more for 2.5-steps). */
    int dec = step > 0 ? (int)ceil(-log10(step) - 1e-9) : 0;
    if (dec < 0)
        dec = 0;
    if (step > 0 && fabs(step * pow(10, dec) - round(step * pow(10, dec))) > 1e-6 * step * pow(10, dec))
        dec++;
    double a = fabs(v);
    if (a >= 1e6 || (a < 1e-4 && dec > 5)) {
        /* Far from 1: the exponent, with the significant digits the step leaves. */
        int digits = step > 0 ? (int)ceil(log10(a / step) - 1e-9) + 1 : 3;
        if (digits < 1)
            digits = 1;
        if (digits > 9)
            digits = 9;
        snprintf(buf, len, "%.*e", digits - 1, v);
    } else {
        if (dec > 12)
            dec = 12;
        snprintf(buf, len, "%.*f", dec, v);
    }
    trim_number(buf, len);
}

void zfv_format_tick(char *buf, size_t len, double v, double step) { zf_viz_tick_label(buf, len, v, step); }

void zf_viz_data_range(double dmin, double dmax, int nonneg, double *lo, double *hi)
{
    if (!(dmax >= dmin)) {
        *lo = 0;
        *hi = 1;
        return;
    }
    double span = dmax - dmin;
    double pad = span > 0 ? 0.05 * span : (dmax != 0 ? 0.05 * fabs(dmax) : 0.5);
    *lo = dmin - pad;
    *hi = dmax + pad;
    /* Zero close by is worth showing (a dead filter's RMS, a count); far off, it only pushes the
     * data into a corner. */
    if (dmin >= 0 && dmin < span / 3)
        *lo = 0;
    if (nonneg && *lo < 0)
        *lo = 0;
}

/* Tick values over [lo, hi] for colour bars: at most 5, so [0, 1] reads 0, 0.25, 0.5, 0.75, 1. */
#define BAR_TICKS 5

/* The labels zfv_colorbar writes: ticks over [lo, hi], or lo alone for a constant map. */
static int colorbar_labels(double lo, double hi, char labels[8][32])
{
    double ticks[8];
    if (!(hi > lo)) {
        zf_viz_tick_label(labels[0], 32, lo, fabs(lo) > 0 ? fabs(lo) / 10 : 1);
        return 1;
    }
    int n = zf_viz_ticks(lo, hi, BAR_TICKS, 0, ticks);
    double step = n > 1 ? ticks[1] - ticks[0] : hi - lo;
    for (int i = 0; i < n; i++)
        zf_viz_tick_label(labels[i], 32, ticks[i], step);
    return n;
}

double zfv_colorbar_width(double lo, double hi, double bar_w)
{
    char labels[8][32];
    int n = colorbar_labels(lo, hi, labels);
    double widest = 0;
    for (int i = 0; i < n; i++) {
        double w;
        zfv_text_size(labels[i], ZFV_SMALL_SIZE, 0, &w, NULL);
        widest = fmax(widest, w);
    }
    return bar_w + 5 + ceil(widest) + 4;
}

zf_status zfv_colorbar(cairo_t *cr, double x, double y, double w, double h, zf_viz_cmap cmap, double lo,
                       double hi, const char *label, double alpha, double bg)
{
    /* 256 rows, one per colour-map entry, top = hi. */
    float ramp[256];
    for (int i = 0; i < 256; i++)
        ramp[i] = (float)(255 - i) / 255.0f;
    if (alpha < 1)
        ZFV_TRY(zfv_fill_rect(cr, x, y, w, h, (zfv_rgb){bg, bg, bg}));
    ZFV_TRY(zfv_paint_map(cr, ramp, 1, 256, 0.0f, 1.0f, cmap, x, y, w, h, alpha));
    ZFV_TRY(zfv_frame(cr, x, y, w, h, 1.0, zfv_ink_light));
    char labels[8][32];
    int n = colorbar_labels(lo, hi, labels);
    if (!(hi > lo))
        ZFV_TRY(zfv_text(cr, x + w + 5, y + h, labels[0], ZFV_SMALL_SIZE, ZFV_MIDDLE, zfv_ink));
    double ticks[8];
    if (hi > lo)
        zf_viz_ticks(lo, hi, BAR_TICKS, 0, ticks);
    for (int i = 0; i < n && hi > lo; i++) {
        double ty = y + h - (ticks[i] - lo) / (hi - lo) * h;
        ZFV_TRY(zfv_line(cr, x + w, ty, x + w + 3, ty, 1.0, zfv_ink));
        ZFV_TRY(zfv_text(cr, x + w + 5, ty, labels[i], ZFV_SMALL_SIZE, ZFV_MIDDLE, zfv_ink));
    }
    if (label && *label)
        ZFV_TRY(zfv_text(cr, x + w / 2, y - 4, label, ZFV_SMALL_SIZE, ZFV_CENTER | ZFV_BOTTOM, zfv_ink));
    return ZF_OK;
}

double zfv_axes_px(const zfv_axes *ax, double x)
{
    return ax->x + (x - ax->xlo) / (ax->xhi - ax->xlo) * ax->w;
}

double zfv_axes_py(const zfv_axes *ax, double y)
{
    double lo = ax->ylo, hi = ax->yhi;
    if (ax->ylog) {
        y = y > 0 ? log10(y) : log10(lo) - 10;
        lo = log10(lo);
        hi = log10(hi);
    }
    double t = (y - lo) / (hi - lo);
    if (t < 0)
        t = 0;
    if (t > 1)
        t = 1;
    return ax->y + ax->h - t * ax->h;
}

zf_status zfv_axes_draw(cairo_t *cr, const zfv_axes *ax, const char *xlabel, const char *ylabel)
{
    char buf[32];
    double t[12];
    int n = zf_viz_ticks(ax->xlo, ax->xhi, 7, ax->xint, t);
    double step = n > 1 ? t[1] - t[0] : 1;
    for (int i = 0; i < n; i++) {
        double px = zfv_axes_px(ax, t[i]);
        ZFV_TRY(zfv_line(cr, px, ax->y + ax->h, px, ax->y + ax->h + 4, 1.0, zfv_ink));
        zfv_format_tick(buf, sizeof buf, t[i], step);
        ZFV_TRY(zfv_text(cr, px, ax->y + ax->h + 5, buf, ZFV_SMALL_SIZE, ZFV_CENTER, zfv_ink));
    }
    if (ax->ylog) {
        for (int e = (int)ceil(log10(ax->ylo) - 1e-9); e <= (int)floor(log10(ax->yhi) + 1e-9); e++) {
            double py = zfv_axes_py(ax, pow(10, e));
            ZFV_TRY(zfv_line(cr, ax->x - 4, py, ax->x, py, 1.0, zfv_ink));
            ZFV_TRY(zfv_line(cr, ax->x, py, ax->x + ax->w, py, 0.5, zfv_rule));
            snprintf(buf, sizeof buf, "1e%d", e);
            ZFV_TRY(zfv_text(cr, ax->x - 6, py, buf, ZFV_SMALL_SIZE, ZFV_RIGHT | ZFV_MIDDLE, zfv_ink));
        }
    } else {
        n = zfv_ticks_ex(ax->ylo, ax->yhi, 6, ax->yint, t);
        step = n > 1 ? t[1] - t[0] : 1;
        for (int i = 0; i < n; i++) {
            double py = zfv_axes_py(ax, t[i]);
            ZFV_TRY(zfv_line(cr, ax->x - 4, py, ax->x, py, 1.0, zfv_ink));
            if (t[i] != ax->ylo)
                ZFV_TRY(zfv_line(cr, ax->x, py, ax->x + ax->w, py, 0.5, zfv_rule));
            zfv_format_tick(buf, sizeof buf, t[i], step);
            ZFV_TRY(zfv_text(cr, ax->x - 6, py, buf, ZFV_SMALL_SIZE, ZFV_RIGHT | ZFV_MIDDLE, zfv_ink));
        }
    }
    ZFV_TRY(zfv_line(cr, ax->x, ax->y + ax->h, ax->x + ax->w, ax->y + ax->h, 1.0, zfv_ink));
    ZFV_TRY(zfv_line(cr, ax->x, ax->y, ax->x, ax->y + ax->h, 1.0, zfv_ink));
    if (xlabel)
        ZFV_TRY(zfv_text(cr, ax->x + ax->w / 2, ax->y + ax->h + 5 + 15 * zfv_font_scale(), xlabel, ZFV_TEXT_SIZE - 1, ZFV_CENTER, zfv_ink));
    if (ylabel)
        ZFV_TRY(zfv_text(cr, ax->x - 6 - 40 * zfv_font_scale(), ax->y + ax->h / 2, ylabel, ZFV_TEXT_SIZE - 1,
                         ZFV_ROT90 | ZFV_MIDDLE | ZFV_CENTER, zfv_ink));
    return ZF_OK;
}

zf_status zfv_legend(cairo_t *cr, double x, double y, const char *const *names, const zfv_rgb *colors,
                     int n, double size)
{
    double line = size * 1.5;
    for (int i = 0; i < n; i++) {
        double ly = y + i * line;
        ZFV_TRY(zfv_fill_rect(cr, x, ly + (line - size) / 2, size, size, colors[i]));
        ZFV_TRY(zfv_text(cr, x + size + 5, ly + line / 2, names[i], size, ZFV_MIDDLE, zfv_ink));
    }
    return ZF_OK;
}
