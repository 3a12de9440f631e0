/* The publication options of the figure commands (filters, activations, occlude, sheet, report,
 * compare, demo): parsed in one place into the renderers' zf_viz_style. */
#ifndef ZF_TOOLS_FIGURE_OPTS_H
#define ZF_TOOLS_FIGURE_OPTS_H

#include "zf/viz.h"

/* Option values, clear of the letters and of the commands' own long-only numbers (256 on). */
enum {
    ZFT_OPT_NO_TITLE = 0x4600,
    ZFT_OPT_FONT_SIZE,
    ZFT_OPT_WIDTH,
    ZFT_OPT_CLIP_PERCENTILE,
    ZFT_OPT_PROB_RANGE
};

/* Every figure command: titles, font size, width. To splice into a getopt_long table. */
#define ZFT_FIGURE_LONGOPTS \
    {"no-title", no_argument, 0, ZFT_OPT_NO_TITLE}, {"font-size", required_argument, 0, ZFT_OPT_FONT_SIZE}, \
    {"width", required_argument, 0, ZFT_OPT_WIDTH}
#define ZFT_FIGURE_HELP \
    "  --no-title        leave out the figure's title and explanation line (for a caption of your own)\n" \
    "  --font-size PT    body text size in pixels (PNG) or points (PDF), default 12; all text scales\n" \
    "  --width W         scale the figure to W pixels (PNG) or points (PDF) wide, e.g. 1200 or 504pt\n"
/* Commands that draw deconv projections. */
#define ZFT_FIGURE_PROJ_LONGOPTS {"clip-percentile", required_argument, 0, ZFT_OPT_CLIP_PERCENTILE}
#define ZFT_FIGURE_PROJ_HELP \
    "  --clip-percentile P  scale deconv projections to the P-th percentile of |value| (e.g. 99.5)\n" \
    "                    instead of the largest, so one extreme pixel does not grey out the rest\n"
/* Commands that draw probability maps (occlusion). */
#define ZFT_FIGURE_PROB_LONGOPTS {"prob-range", required_argument, 0, ZFT_OPT_PROB_RANGE}
#define ZFT_FIGURE_PROB_HELP \
    "  --prob-range R    colour scale of probability maps: 0:1 (default), LO:HI, or auto (each\n" \
    "                    map's own min to max, which makes tiny changes look large)\n"

/* Handles the options above: -1 if `opt` is not one of them, 0 when it was and its value is good,
 * else the usage error's exit code (2), the one-line message printed for `cmd`. */
int zft_figure_option(zf_viz_style *style, const char *cmd, int opt, const char *arg);

#endif
