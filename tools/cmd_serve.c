/* zfviz serve: the unit atlas served live from a scan database opened read-only (libmicrohttpd). */
#include <arpa/inet.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common.h"
#include "site.h"

const char zf_cmd_serve_summary[] = "serve the unit atlas of a scan over HTTP (read-only)";

static void usage(void)
{
    printf("usage: zfviz serve --db SCAN.db [--port P] [--bind ADDR] [--run ID] [--layers L1,L2]\n"
           "                   [--min-active F] [--arch A --weights W | --model F]\n\n"
           "Serves the pages of zfviz site (index, layer and unit pages, the stored projections) from\n"
           "the scan database, opened read-only, to a browser. Only the atlas's own addresses answer:\n"
           "no file is read from disk. A unit's projections not stored in the database are computed\n"
           "when its page asks for them (not stored); layer pages show thumbnails of stored ones only,\n"
           "so run zfviz site once to store them all. Work on any scanned image (SEQ, its place in the\n"
           "run's list) with the run's model: /RUN/LAYER/UNIT/deconv/SEQ.png, a conv unit's projection\n"
           "on the whole input; /RUN/LAYER/UNIT/occlude/SEQ.png and /RUN/class/K/occlude/SEQ.png, the\n"
           "occlusion map of the unit's map total or of class K's probability (?patch=P&stride=S, at\n"
           "most 4096 positions). POST /forward (the index's form) runs an\n"
           "uploaded JPEG or PNG (multipart field 'image', up to 32 MB) through the first run's model\n"
           "and lists its top classes and strongest units. Ctrl-C stops the server.\n\n"
           "  --db F            the scan database\n"
           ZFT_WAIT_HELP
           "  --port P          TCP port (default 8080; 0: any free port, printed)\n"
           "  --bind ADDR       IPv4 address to listen on (default 127.0.0.1: this machine only)\n"
           "  --run ID          this run only (default: every run)\n"
           "  --layers L,...    these scanned layers only (default: all)\n"
           "  --min-active F    'near-dead' below this active fraction (default 0.01)\n"
           "  the model (for the filters) defaults to the one each run scanned:\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
           "  -h, --help        this help\n");
}

typedef struct server {
    zft_atlas *atlas;
    pthread_mutex_t lock;
} server;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *reason)
{
    char line[600];
    int n = snprintf(line, sizeof line, "%u %s\n", status, reason);
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, line, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decoding in place, except that an encoded NUL stays a '%' (which no address of the
 * atlas holds): decoded, it would end the path early and "/x/%00.html" would read as "/x/". */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0) {
            *w++ = hi * 16 + lo ? (char)(hi * 16 + lo) : '%';
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* A request in progress: a GET, or the upload of POST /forward being gathered. */
typedef struct request {
    int post;
    struct MHD_PostProcessor *pp;
    uint8_t *data;
    size_t len, cap;
    int files;     /* "image" parts seen */
    int too_big, failed;
} request;

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *type, const char *encoding, const char *data, uint64_t off, size_t size)
{
    (void)kind;
    (void)filename;
    (void)type;
    (void)encoding;
    request *rq = cls;
    if (strcmp(key, "image"))
        return MHD_YES; /* other fields are ignored */
    if (off == 0)
        rq->files++;
    if (rq->files > 1 || rq->too_big || rq->failed)
        return MHD_YES;
    if (rq->len + size > ZFT_UPLOAD_MAX) {
        rq->too_big = 1;
        return MHD_YES;
    }
    if (rq->len + size > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 65536;
        while (cap < rq->len + size)
            cap *= 2;
        uint8_t *nd = realloc(rq->data, cap);
        if (!nd) {
            rq->failed = 1;
            return MHD_YES;
        }
        rq->data = nd;
        rq->cap = cap;
    }
    memcpy(rq->data + rq->len, data, size);
    rq->len += size;
    return MHD_YES;
}

static void on_done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    request *rq = *state;
    if (!rq)
        return;
    if (rq->pp)
        MHD_destroy_post_processor(rq->pp);
    free(rq->data);
    free(rq);
    *state = NULL;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, zft_site_reply *rep);

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)version;
    server *sv = cls;
    if (!*state) { /* first call: headers only */
        request *rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *state = rq;
        if (!strcmp(method, MHD_HTTP_METHOD_POST) && !strcmp(url, "/forward")) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > (unsigned long long)ZFT_UPLOAD_MAX + 65536) {
                char why[128];
                snprintf(why, sizeof why, "the upload is larger than %d MB", ZFT_UPLOAD_MAX >> 20);
                return send_text(c, MHD_HTTP_CONTENT_TOO_LARGE, why);
            }
            rq->post = 1;
            rq->pp = MHD_create_post_processor(c, 65536, on_part, rq);
            if (!rq->pp)
                return send_text(c, MHD_HTTP_BAD_REQUEST, "POST /forward takes multipart/form-data with a field 'image'");
            return MHD_YES;
        }
        if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
            return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                             "only GET and HEAD, and POST /forward for an upload: the atlas is read-only");
        return MHD_YES;
    }
    request *rq = *state;
    if (rq->post) {
        if (*upload_size) {
            if (MHD_post_process(rq->pp, upload, *upload_size) != MHD_YES)
                rq->failed = 1;
            *upload_size = 0;
            return MHD_YES;
        }
        if (rq->too_big) {
            char why[128];
            snprintf(why, sizeof why, "the upload is larger than %d MB", ZFT_UPLOAD_MAX >> 20);
            return send_text(c, MHD_HTTP_CONTENT_TOO_LARGE, why);
        }
        if (rq->failed || rq->files != 1 || rq->len == 0)
            return send_text(c, MHD_HTTP_BAD_REQUEST,
                             rq->files > 1 ? "one image at a time (field 'image')"
                                           : "no image: send multipart/form-data with one file in the field 'image'");
        zft_site_reply rep;
        pthread_mutex_lock(&sv->lock);
        zft_atlas_forward(sv->atlas, rq->data, rq->len, &rep);
        pthread_mutex_unlock(&sv->lock);
        return send_reply(c, &rep);
    }
    if (*upload_size) { /* a GET with a body */
        *upload_size = 0;
        return send_text(c, MHD_HTTP_BAD_REQUEST, "a GET request has no body");
    }
    zft_site_reply rep;
    zft_site_query q = {MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "patch"),
                        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stride")};
    pthread_mutex_lock(&sv->lock);
    zft_atlas_get(sv->atlas, url, &q, &rep);
    pthread_mutex_unlock(&sv->lock);
    return send_reply(c, &rep);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, zft_site_reply *rep)
{
    if (rep->status != 200)
        return send_text(c, (unsigned)rep->status, rep->reason);
    struct MHD_Response *r = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(rep->body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", rep->type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

int zf_cmd_serve(int argc, char **argv)
{
    zft_site_opts o = {0};
    o.min_active = 0.01;
    long port = 8080;
    const char *bind = "127.0.0.1";
    const zft_opt opts[] = {ZFT_STR("db", 'd', &o.dbpath), ZFT_LONG("port", 'p', 0, 65535, "0..65535", &port),
                            ZFT_STR("bind", 'b', &bind), ZFT_RUN_OPT(&o.run),
                            ZFT_STR("layers", 'l', &o.layers), ZFT_MIN_ACTIVE_OPT(&o.min_active), {0}};
    zft_args a = {.cmd = "serve", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .model = &o.model, .device = &o.device, .shared = ZFT_WITH_WAIT};
    if (zft_args_parse(&a))
        return a.rc;
    if (!o.dbpath)
        return zft_usage_error("serve", "--db is required (see --help)");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1)
        return zft_usage_error("serve", "--bind needs an IPv4 address such as 127.0.0.1, got '%s'", bind);

    server sv;
    memset(&sv, 0, sizeof sv);
    zf_status st = zft_atlas_open(&o, &sv.atlas);
    if (st)
        return zft_fail("serve", st);
    pthread_mutex_init(&sv.lock, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL, NULL, on_request, &sv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, 4u,
        MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    int rc = 0;
    if (!d) {
        fprintf(stderr, "zfviz serve: cannot listen on %s port %ld (in use? another --port)\n", bind, port);
        rc = 1;
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "zfviz serve: %s on %s port %u (Ctrl-C stops)\n", o.dbpath, bind,
            info ? (unsigned)info->port : (unsigned)port);
    while (!zf_interrupted) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    fprintf(stderr, "zfviz serve: stopped\n");
out:
    pthread_mutex_destroy(&sv.lock);
    zft_atlas_free(sv.atlas);
    return rc;
}
