/* Helpers shared by the zfviz subcommands (see common.h). */
#include "common.h"
#include "figure_opts.h"

#include "zf/file.h"
#include "zf/input.h"
#include "zf/clock.h"
#include "zf/model.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zf/engine.h"
#include "zf/onnx.h"

static void on_sigint(int sig)
{
    static volatile sig_atomic_t seen;
    (void)sig;
    if (seen)
        _exit(130);
    seen = 1;
    zf_abort_request(); /* an atomic store: safe in a signal handler */
}

void zft_install_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

int zft_fail(const char *cmd, zf_status st)
{
    const char *msg = zf_last_error();
    fprintf(stderr, "zfviz %s: %s\n", cmd, msg && *msg ? msg : zf_status_name(st));
    /* At exit, once the command has closed what it had open (its unfinished temporary files). */
    static int armed;
    if (!armed++)
        atexit(zft_outputs_cleanup);
    return st == ZF_ERR_INTERRUPTED ? 130 : 1;
}

int zft_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "zfviz %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see zfviz %s --help)\n", cmd);
    return 2;
}

const char *zft_command = "";
static double wait_s = 30;

int zft_wait_set(const char *arg)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !(v > 0 && v < 1e9))
        return -1;
    wait_s = v;
    return 0;
}

double zft_wait_seconds(void) { return wait_s; }

int zft_common_option(const char *cmd, int opt, const char *arg, struct zft_model_opts *model,
                      struct zf_viz_style *style)
{
    if (style) {
        int r = zft_figure_option(style, cmd, opt, arg);
        if (r >= 0)
            return r;
    }
    if (model && zft_model_option(model, opt, arg))
        return 0;
    if (zft_force_option(opt))
        return 0;
    if (opt == ZFT_OPT_WAIT)
        return zft_wait_set(arg) ? zft_usage_error(cmd, "--wait takes a positive number of seconds, got '%s'", arg)
                                 : 0;
    return -1;
}

int zft_option_error(const char *cmd)
{
    fprintf(stderr, "zfviz %s: see 'zfviz help %s' for its options\n", cmd, cmd);
    return 2;
}

/* Stores `arg` where option `n` says, a number once checked; else the usage line. */
static int value_option(const zft_args *a, const zft_opt *n, const char *arg)
{
    if (n->s || n->flag) {
        if (n->s)
            *n->s = arg;
        else
            *n->flag = 1;
        return 0;
    }
    if (n->parse)
        return n->parse(n->to, arg) ? zft_usage_error(a->cmd, "%s", zf_last_error()) : 0;
    double v;
    int ok;
    if (n->i || n->l) {
        long w = zft_parse_long(arg);
        v = (double)w;
        ok = w >= 0 && (!n->i || w <= INT_MAX);
    } else {
        char *end;
        v = strtod(arg, &end);
        ok = end != arg && !*end && isfinite(v);
    }
    if (!ok || !(v >= n->lo && v <= n->hi))
        return zft_usage_error(a->cmd, "--%s needs %s, got '%s'", a->name, n->what, arg);
    if (n->i)
        *n->i = (int)v;
    else if (n->l)
        *n->l = zft_parse_long(arg);
    else if (n->d)
        *n->d = v;
    else
        *n->f = (float)v;
    return 0;
}

/* The command stops with exit code rc. */
static int args_stop(zft_args *a, int rc)
{
    a->rc = rc;
    return '?';
}

/* The getopt_long table: the command's options, then the shared ones it takes, then --help. */
static void args_table(zft_args *a)
{
    static const struct option model[] = {ZFT_MODEL_LONGOPTS}, figure[] = {ZFT_FIGURE_LONGOPTS},
                               proj[] = {ZFT_FIGURE_PROJ_LONGOPTS}, prob[] = {ZFT_FIGURE_PROB_LONGOPTS},
                               device[] = {ZFT_DEVICE_LONGOPTS}, force[] = {ZFT_FORCE_LONGOPT},
                               wait[] = {ZFT_WAIT_LONGOPT}, help[] = {{"help", no_argument, 0, 'h'}};
    const struct {
        int on;
        const struct option *o;
        int n;
    } groups[] = {{a->model != NULL, model, 4},
                  {a->style != NULL, figure, 3},
                  {(a->shared & ZFT_WITH_PROJ) != 0, proj, 1},
                  {(a->shared & ZFT_WITH_PROB) != 0, prob, 1},
                  {a->device != NULL, device, 2},
                  {(a->shared & ZFT_WITH_FORCE) != 0, force, 1},
                  {(a->shared & ZFT_WITH_WAIT) != 0, wait, 1},
                  {1, help, 1}};
    int n = 0;
    for (const zft_opt *o = a->opts; o && o->name; o++)
        a->longopts[n++] = (struct option){o->name, o->has_arg, NULL, o->val};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (int k = 0; groups[g].on && k < groups[g].n; k++)
            a->longopts[n++] = groups[g].o[k];
    assert(n < ZFT_MAX_OPTS);
    a->longopts[n] = (struct option){0, 0, 0, 0};
}

int zft_args_next(zft_args *a)
{
    if (!a->longopts[0].name)
        args_table(a);
    for (;;) {
        int c = getopt_long(a->argc, a->argv, a->shortopts, a->longopts, NULL);
        if (c == -1) {
            if (a->operands >= 0 && a->argc - optind > a->operands)
                return args_stop(a, zft_usage_error(a->cmd, "unexpected argument '%s'",
                                                    a->argv[optind + a->operands]));
            /* the engine is chosen before any work, so that one that cannot run stops the command */
            int rc = a->device ? zft_device_select(a->cmd, a->device) : 0;
            return rc ? args_stop(a, rc) : -1;
        }
        if (c == '?' || c == ':') /* getopt has named the option */
            return args_stop(a, zft_option_error(a->cmd));
        if (c == 'h') {
            a->usage();
            return args_stop(a, 0);
        }
        a->name = "";
        for (const struct option *o = a->longopts; o->name; o++)
            if (o->val == c) {
                a->name = o->name;
                break;
            }
        int r = zft_common_option(a->cmd, c, optarg, a->model, a->style);
        if (r > 0)
            return args_stop(a, r);
        if (r == 0 || (a->device && zft_device_option(a->device, c, optarg)))
            continue;
        const zft_opt *n = a->opts;
        while (n && n->name && n->val != c)
            n++;
        if (!n || !n->name || !(n->i || n->l || n->d || n->f || n->s || n->flag || n->parse)) {
            a->rc = ZFT_EXIT_USAGE; /* what the command returns for an option it does not handle */
            return c;
        }
        if (value_option(a, n, optarg))
            return args_stop(a, ZFT_EXIT_USAGE);
    }
}

int zft_args_parse(zft_args *a)
{
    int c = zft_args_next(a);
    if (c == -1)
        return 0;
    if (c != '?')
        a->rc = zft_option_error(a->cmd);
    return 1;
}

int zft_args_choice(const zft_args *a, const char *names)
{
    const size_t len = strlen(optarg);
    int k = 0;
    for (const char *p = names;; k++) {
        const char *bar = strchr(p, '|');
        const size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, optarg, n))
            return k;
        if (!bar)
            break;
        p = bar + 1;
    }
    /* "a|b|c" reads "a, b or c" */
    char list[512];
    size_t o = 0;
    for (const char *p = names; *p && o + 4 < sizeof list; p++) {
        if (*p != '|') {
            list[o++] = *p;
            continue;
        }
        const char *sep = strchr(p + 1, '|') ? ", " : " or ";
        for (; *sep && o + 4 < sizeof list; sep++)
            list[o++] = *sep;
    }
    list[o] = '\0';
    zft_usage_error(a->cmd, "--%s is %s, got '%s'", a->name, list, optarg);
    return -1;
}

int zft_model_option(zft_model_opts *o, int opt, const char *arg)
{
    switch (opt) {
    case 'A': o->arch = arg; return 1;
    case 'W': o->weights = arg; return 1;
    case 'M': o->model = arg; return 1;
    case 'P': o->preproc = arg; return 1;
    default: return 0;
    }
}

/* A zfviz model file (a .safetensors whose metadata describes the net) rather than weights. */
static int is_whole_model(const char *path)
{
    size_t n = strlen(path);
    return n > 12 && !strcmp(path + n - 12, ".safetensors") && zf_model_is_whole(path);
}

/* An absolute form of a path, so that a later command run elsewhere finds it; random:SEED and
 * names that are no file stay as given. */
static zf_status absolute_path(const char *in, char *out, size_t len)
{
    char real[PATH_MAX];
    const char *p = in && strncmp(in, "random:", 7) != 0 && realpath(in, real) ? real : in ? in : "";
    if ((size_t)snprintf(out, len, "%s", p) >= len)
        return zf_error(ZF_ERR_ARG, "%s: path longer than %zu characters", p, len - 1);
    return ZF_OK;
}

static void base_name(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, len, "%s", slash && slash[1] ? slash + 1 : path);
}

/* A NaN or Inf weight would make every output NaN or a constant after the ReLUs: refused at load,
 * naming the file and the layer (one pass over the parameters: 18 ms for AlexNet's 61 million). */
static zf_status check_finite_weights(const zf_net *net, const char *source)
{
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        char what[512];
        snprintf(what, sizeof what, "%s: %s weights", source, l->name);
        if (l->weight && zf_values_check_finite(l->weight, (size_t)l->weight_count, what, NULL))
            return ZF_ERR_FORMAT;
        snprintf(what, sizeof what, "%s: %s biases", source, l->name);
        if (l->bias && zf_values_check_finite(l->bias, (size_t)l->bias_count, what, NULL))
            return ZF_ERR_FORMAT;
    }
    return ZF_OK;
}

zf_status zft_load_model_ref(const zft_model_opts *o, zf_net **out, zft_model_ref *ref)
{
    *out = NULL;
    zft_model_ref r;
    memset(&r, 0, sizeof r);
    char base[512];
    zf_net *net = NULL;
    zf_status st;
    const void *bytes;
    size_t len;
    if (o->model) {
        if (o->arch || o->weights)
            return zf_error(ZF_ERR_ARG, "--model takes the whole network from the file: leave out --arch/--weights");
        base_name(o->model, base, sizeof base);
        if (zft_embedded_model(o->model, &bytes, &len)) {
            st = zf_model_load_memory(bytes, len, o->model, &net);
            snprintf(r.file, sizeof r.file, "%s", o->model);
            snprintf(r.label, sizeof r.label, "%s (embedded)", o->model);
        } else if (is_whole_model(o->model)) {
            st = zf_model_load(o->model, &net);
            if (!st)
                st = absolute_path(o->model, r.file, sizeof r.file);
            snprintf(r.label, sizeof r.label, "%s", base);
        } else {
            st = zf_onnx_open_model(o->model, &(zf_onnx_options){.preproc = o->preproc}, &net);
            if (!st)
                st = absolute_path(o->model, r.file, sizeof r.file);
            if (st) {
                zf_net_free(net);
                return st;
            }
            snprintf(r.label, sizeof r.label, "%s", base);
            goto done; /* the ONNX loader applied --preproc itself */
        }
    } else if (o->weights && is_whole_model(o->weights)) {
        st = zf_model_load(o->weights, &net);
        if (!st && o->arch && strcmp(o->arch, net->arch)) {
            st = zf_error(ZF_ERR_ARG, "%s holds a %s model, not %s", o->weights, net->arch, o->arch);
        }
        if (!st)
            st = absolute_path(o->weights, r.file, sizeof r.file);
        base_name(o->weights, base, sizeof base);
        snprintf(r.label, sizeof r.label, "%s", base);
    } else {
        /* No weights: the embedded trained model of that arch (alexnet-mini by default), else
         * seeded random weights. */
        const char *arch = o->arch ? o->arch : (zft_embedded_model("alexnet-mini", &bytes, &len) ? "alexnet-mini" : "alexnet");
        if (!o->weights && zft_embedded_model(arch, &bytes, &len)) {
            st = zf_model_load_memory(bytes, len, arch, &net);
            if (!st && !o->arch)
                fprintf(stderr, "zfviz: no model given: using the embedded %s (trained on Fashion-MNIST; see zfviz info)\n", arch);
            snprintf(r.file, sizeof r.file, "%s", arch);
            snprintf(r.label, sizeof r.label, "%s (embedded)", arch);
        } else {
            st = zf_net_new_builtin(arch, &net);
            const char *w = o->weights ? o->weights : "random:0";
            if (!o->weights)
                fprintf(stderr, "zfviz: no --weights given: using random weights (random:0)\n");
            if (!st)
                st = zf_net_load_weights(net, w);
            if (!st)
                st = absolute_path(w, r.weights, sizeof r.weights);
            base_name(w, base, sizeof base);
            snprintf(r.label, sizeof r.label, "%s (%s)", arch, base);
        }
    }
    if (!st && o->preproc)
        st = zf_onnx_preproc_parse(o->preproc, &net->pre);
    if (!st)
        st = check_finite_weights(net, o->model ? o->model : o->weights ? o->weights : net->arch);
    if (st) {
        zf_net_free(net);
        return st;
    }
done:
    snprintf(r.arch, sizeof r.arch, "%s", net->arch);
    if (ref)
        *ref = r;
    *out = net;
    return ZF_OK;
}

zf_status zft_load_model(const zft_model_opts *o, zf_net **out) { return zft_load_model_ref(o, out, NULL); }

int zft_split_list(const char *s, char *buf, size_t buflen, const char **items, int max)
{
    snprintf(buf, buflen, "%s", s ? s : "");
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
        if (*tok)
            items[n++] = tok;
    return n;
}

long zft_parse_long(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 0)
        return -1;
    return v;
}

/* Folders zft_mkdirs made in this process, oldest first. */
static char **made_dirs;
static int n_made_dirs;

static int make_dir_recorded(const char *path)
{
    if (mkdir(path, 0777))
        return -1;
    char **p = realloc(made_dirs, sizeof *p * (size_t)(n_made_dirs + 1));
    char *copy = p ? strdup(path) : NULL;
    if (p)
        made_dirs = p;
    if (copy) /* out of memory: the folder is kept, the safe side */
        made_dirs[n_made_dirs++] = copy;
    return 0;
}

zf_status zft_mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (make_dir_recorded(buf) && errno != EEXIST)
            return zf_error(ZF_ERR_IO, "%s: cannot create the folder: %s", buf, strerror(errno));
        *p = '/';
    }
    if (make_dir_recorded(buf) && errno != EEXIST)
        return zf_error(ZF_ERR_IO, "%s: cannot create the folder: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) || !S_ISDIR(sb.st_mode))
        return zf_error(ZF_ERR_IO, "%s: not a folder", buf);
    return ZF_OK;
}

zf_status zft_mkdirs_for(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return ZF_OK;
    *slash = 0;
    return zft_mkdirs(dir);
}

int zft_force_option(int opt)
{
    if (opt != ZFT_OPT_FORCE)
        return 0;
    zf_file_set_force(1);
    return 1;
}

zf_status zft_output_check(const char *path) { return zf_file_check(path); }

zf_status zft_output_prepare(const char *path)
{
    zf_status st = zf_file_check(path);
    return st ? st : zft_mkdirs_for(path);
}

void zft_outputs_cleanup(void)
{
    zf_file_remove_created();
    for (int i = n_made_dirs - 1; i >= 0; i--) {
        rmdir(made_dirs[i]); /* only when empty: anything else put there stays */
        free(made_dirs[i]);
    }
    free(made_dirs);
    made_dirs = NULL;
    n_made_dirs = 0;
}

void zft_outputs_keep(void)
{
    zf_file_forget_created();
    for (int i = 0; i < n_made_dirs; i++)
        free(made_dirs[i]);
    free(made_dirs);
    made_dirs = NULL;
    n_made_dirs = 0;
}

void zft_occlusion_defaults(const zf_net *net, int *patch, int *stride)
{
    /* The paper's 224-pixel maps use a 32-pixel square at steps of 8 (zfviz report's long-standing
     * default): keep those fractions of the input, so a 112-pixel mini net gets 16 at steps of 4
     * and the same 25 x 25 map instead of 11 x 11 blocks of a square that hides half the item. */
    const int side = net->in_h < net->in_w ? net->in_h : net->in_w;
    *patch = (int)lrint(side / 7.0);
    *stride = (int)lrint(side / 28.0);
    if (*patch < 1)
        *patch = 1;
    if (*stride < 1)
        *stride = 1;
}

double zft_now(void) { return zf_clock_now(); }

void zft_progress_start(zft_progress *p, const char *label, int64_t total, const char *unit)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->unit = unit ? unit : "it";
    p->start = zft_now();
    p->delay = 1.0;
}

static void draw(zft_progress *p, int64_t done, int final)
{
    const double t = zft_now() - p->start;
    const double rate = t > 0 ? done / t : 0;
    const double frac = p->total > 0 ? (double)done / p->total : 0;
    const int width = 30, fill = (int)(frac * width + 0.5);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double eta = rate > 0 && p->total > done ? (p->total - done) / rate : 0;
    fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  %s %02d:%02d  %s ", p->label, bar, (long long)done,
            (long long)p->total, p->unit, rate, p->unit, final ? "took" : "ETA",
            (int)((final ? t : eta) / 60), (int)(final ? t : eta) % 60, p->extra);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

void zft_progress_update(zft_progress *p, int64_t done)
{
    const double now = zft_now();
    if (now - p->start < p->delay || now - p->last_draw < 0.1 || !isatty(2))
        return;
    p->last_draw = now;
    p->drawn = 1;
    draw(p, done, 0);
}

void zft_progress_finish(zft_progress *p)
{
    if (p->drawn)
        draw(p, p->total, 1);
}

int zft_device_option(zft_device *d, int opt, const char *arg)
{
    switch (opt) {
    case ZFT_OPT_DEVICE: d->device = arg; return 1;
    case ZFT_OPT_PRECISION: d->precision = arg; return 1;
    default: return 0;
    }
}

int zft_device_select(const char *cmd, zft_device *d)
{
    int fallback = 0;
    zf_status st;
    if (d->precision && strcmp(d->precision, "fp32") && strcmp(d->precision, "tf32") && strcmp(d->precision, "bf16"))
        return zft_usage_error(cmd, "--precision is fp32, tf32 or bf16, got '%s'", d->precision);
    const unsigned needs = d->needs ? d->needs : ZF_ENGINE_NEEDS(ZF_ENGINE_OP_FORWARD);
    if ((st = zf_engine_select(d->device, needs, &d->iface, &d->index, &fallback, d->note, sizeof d->note))) {
        if (st == ZF_ERR_ARG) /* a misspelt device: the usage line */
            return zft_usage_error(cmd, "%s", zf_last_error());
        fprintf(stderr, "zfviz %s: %s\n", cmd, zf_last_error()); /* the reason, and no fallback */
        return ZFT_EXIT_USAGE;
    }
    const int is_auto = !d->device || !strcmp(d->device, "auto");
    const zf_engine_iface *cpu = zf_engine_list()[0];
    if (d->iface == cpu && d->precision && strcmp(d->precision, "fp32") &&
        (!strcmp(d->precision, "tf32") || !d->cpu_bf16)) {
        if ((!is_auto || !fallback) && !strcmp(d->precision, "tf32"))
            return zft_usage_error(cmd, "--precision %s: the cpu engine computes in fp32 or bf16", d->precision);
        if (!is_auto || !fallback)
            return zft_usage_error(cmd, "--precision %s: %s computes in fp32 on the cpu (bf16 there: forward, deconv, "
                                   "activations)", d->precision, cmd);
        d->precision = NULL; /* auto without a GPU: the CPU's float32, as the note says */
    }
    if ((d->device && !strcmp(d->device, "auto")) || (is_auto && d->iface != cpu))
        fprintf(stderr, "zfviz %s: device %s\n", cmd, d->note);
    return 0;
}

zft_device zft_device_choice(const zft_device *d)
{
    zft_device c = *d;
    c.eng = NULL;
    return c;
}

zf_status zft_device_open_another(zft_device *d, zf_net *net, int batch, zf_engine **out)
{
    *out = NULL;
    if (!d->iface) {
        int fallback;
        zf_status st = zf_engine_select(d->device, d->needs ? d->needs : ZF_ENGINE_NEEDS(ZF_ENGINE_OP_FORWARD),
                                        &d->iface, &d->index, &fallback, d->note, sizeof d->note);
        if (st)
            return st;
    }
    zf_engine_opts o = {.device = d->index, .batch = batch, .precision = d->precision};
    return zf_engine_open(d->iface, net, &o, out);
}

zf_status zft_device_open(zft_device *d, zf_net *net, int batch)
{
    zft_device_close(d);
    return zft_device_open_another(d, net, batch, &d->eng);
}

zf_status zft_device_forward(zft_device *d, zf_net *net, const float *input, int n, const int *layers,
                             int n_layers)
{
    if (!d->eng)
        return zf_net_forward(net, input, n);
    const int last = net->n_layers - 1;
    zf_status st = zf_engine_forward_layers(d->eng, input, n, last, layers, n_layers);
    return st || !layers ? st : zf_engine_read(d->eng, last, net->acts[last], n);
}

zf_status zft_device_deconv(zft_device *d, zf_net *net, const float *input, int n, const zf_deconv_req *req,
                            float *out)
{
    /* the projection needs the switches up to the layer, not the classifier */
    const int last = zf_engine_deconv_last(net, req);
    if (!d->eng) {
        zf_status st = zf_net_forward_upto(net, input, n, last);
        return st ? st : zf_net_deconv(net, out, n, req);
    }
    zf_status st = zf_engine_forward(d->eng, input, n, last);
    return st ? st : zf_engine_deconv(d->eng, out, n, req);
}

zf_status zft_device_occlusion(zft_device *d, zf_net *net, const float *input, const zf_occlusion_params *p,
                               zf_occlusion_result **out)
{
    return d->eng ? zf_engine_occlusion(d->eng, input, p, out) : zf_occlusion_run(net, input, p, out);
}

const char *zft_device_name(const zft_device *d)
{
    return d->eng ? zf_engine_name(d->eng) : d->iface ? d->iface->name : "cpu";
}

void zft_device_close(zft_device *d)
{
    zf_engine_close(d->eng);
    d->eng = NULL;
}
