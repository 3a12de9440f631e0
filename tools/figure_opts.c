/* The publication options of the figure commands, parsed into a zf_viz_style. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"

/* A positive number in [lo, hi], with an optional unit suffix ("pt" or "px", both one unit). */
static int parse_size(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= lo && v <= hi))
        return -1;
    if (*end && strcmp(end, "pt") && strcmp(end, "px"))
        return -1;
    *out = v;
    return 0;
}

int zft_figure_option(zf_viz_style *style, const char *cmd, int opt, const char *arg)
{
    double v;
    switch (opt) {
    case ZFT_OPT_NO_TITLE:
        style->no_title = 1;
        return 0;
    case ZFT_OPT_FONT_SIZE:
        if (parse_size(arg, 4, 72, &v))
            return zft_usage_error(cmd, "--font-size needs a size from 4 to 72, got '%s'", arg);
        style->font_size = v;
        return 0;
    case ZFT_OPT_WIDTH:
        if (parse_size(arg, 50, 20000, &v))
            return zft_usage_error(cmd, "--width needs a width from 50 to 20000 (pixels or pt), got '%s'", arg);
        style->width = v;
        return 0;
    case ZFT_OPT_CLIP_PERCENTILE:
        if (parse_size(arg, 0, 100, &v) || strstr(arg, "p") || v < 50)
            return zft_usage_error(cmd, "--clip-percentile needs a percentile from 50 to 100, got '%s'", arg);
        style->clip_percentile = (float)v;
        return 0;
    case ZFT_OPT_PROB_RANGE:
        if (zf_viz_prob_range_parse(arg, style))
            return zft_usage_error(cmd, "--prob-range is auto or LO:HI with 0 <= LO < HI <= 1, got '%s'", arg);
        return 0;
    default:
        return -1;
    }
}
