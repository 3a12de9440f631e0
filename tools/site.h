/* The unit atlas: a static web site of a scan database (zfviz site), a page per run layer and per
 * unit, with the deconv projections rendered once and kept in the database's renderings table. */
#ifndef ZF_TOOLS_SITE_H
#define ZF_TOOLS_SITE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "viz_db.h"

typedef struct zft_site_opts {
    const char *dbpath;    /* the scan database (opened read-write: new renderings are stored) */
    const char *out;       /* the site's folder */
    zft_model_opts model;  /* the model of the runs; default: the one each run recorded */
    int64_t run;           /* one run; 0: every run of the database */
    const char *layers;    /* "conv1,conv5": these layers only; NULL: every scanned layer */
    int top_units;         /* > 0: projections only for the N strongest units of a conv layer */
    double min_active;     /* active on fewer images than this fraction: flagged near-dead */
    int lrn_backward;      /* the true LRN backward on the way down (default: identity) */
    zft_reroot reroot;
    zft_device device;     /* where missing projections are computed (--device, --precision) */
} zft_site_opts;

typedef struct zft_site_stats {
    int pages, pngs;          /* files written */
    int rendered, reused;     /* examples projected now, and those whose renderings were stored */
    size_t largest;           /* bytes of the largest page */
    char largest_path[4096];
    double secs_render;       /* time spent projecting and encoding */
    int rendered_bottom;      /* bottom-k patches made now (the stored ones count as reused) */
    double secs_bottom;       /* time spent making them */
} zft_site_stats;

/* Builds the site: DIR/index.html (runs, models, layers), DIR/<run>/<layer>/index.html (a sortable
 * table of the layer's units and a grid of thumbnails), DIR/<run>/<layer>/<unit>.html (top-k
 * patches beside their projections, statistics, filter), images under DIR/<run>/<layer>/img/.
 * Every file goes through zf_file. */
zf_status zft_site_build(const zft_site_opts *o, zft_site_stats *stats);

/* The same pages served from the database opened read-only (zfviz serve): pictures are the
 * renderings stored there (a unit whose projections are not stored shows its statistics without
 * them). One request at a time per atlas: the caller serialises zft_atlas_get. */
typedef struct zft_atlas zft_atlas;
zf_status zft_atlas_open(const zft_site_opts *o, zft_atlas **out);
void zft_atlas_free(zft_atlas *a);
typedef struct zft_site_reply {
    int status;          /* 200, or 4xx/5xx with reason */
    void *body;          /* malloc'd (the caller frees it), NULL unless 200 */
    size_t len;
    const char *type;    /* the content type */
    char reason[512];    /* one line, for a status other than 200 */
} zft_site_reply;
/* The query of a GET: the occlusion map's patch and stride as the client wrote them (NULL: absent). */
typedef struct zft_site_query {
    const char *patch, *stride;
} zft_site_query;
/* Answers GET `url` (the path, percent-decoded; query may be NULL): only the atlas's own addresses
 * resolve, never a file. Besides the pages and stored pictures, work done on demand with the run's
 * model on any image the run scanned (seq, its place in the run's list):
 * /<run>/<layer>/<unit>/deconv/<seq>.png, the deconvnet projection of a conv unit at its strongest
 * position on the whole input; /<run>/<layer>/<unit>/occlude/<seq>.png, the occlusion map of the
 * unit's rectified map total, and /<run>/class/<k>/occlude/<seq>.png, of class k's probability
 * (query patch and stride, bounded). Returns r->status. */
int zft_atlas_get(zft_atlas *a, const char *url, const zft_site_query *query, zft_site_reply *r);

/* POST /forward (zfviz serve): an uploaded image (at most ZFT_UPLOAD_MAX bytes, decoded and checked
 * as any input image) through the first run's net: a page with its top classes and, per scanned
 * layer, its strongest units linked to their pages. 415 for a file that is not an image. */
#define ZFT_UPLOAD_MAX (32 << 20)
int zft_atlas_forward(zft_atlas *a, const uint8_t *bytes, size_t len, zft_site_reply *r);

/* The stylesheet and the script every page links (DIR/atlas.css, DIR/atlas.js). */
extern const char zft_site_css[], zft_site_js[];

#endif
