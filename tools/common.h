/* Helpers shared by the zfviz subcommands: errors, model options, lists, progress bars. */
#ifndef ZF_TOOLS_COMMON_H
#define ZF_TOOLS_COMMON_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "zf/engine.h"
#include "zf/net.h"
#include "zf/status.h"
#include "zf/tensor.h"

#define ZF_VERSION_STRING "0.1.0"

/* Ctrl-C asks the library's work to stop (zf_abort_request); a second Ctrl-C ends the process at
 * once. */
void zft_install_sigint(void);

/* Prints "zfviz CMD: <last error>" on stderr and returns the exit code for `st` (1). */
int zft_fail(const char *cmd, zf_status st);
/* Prints "zfviz CMD: <message>" on stderr and returns 2 (usage error). */
int zft_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What every command says after getopt's own line on an unknown option or a missing value:
 * "zfviz CMD: see 'zfviz help CMD' for its options" on stderr; returns 2. */
int zft_option_error(const char *cmd);

/* Databases: every command that opens one takes --wait S, how long to wait for a lock another
 * process holds (default 30 s), and says that it waits after a second, then every five. */
#define ZFT_OPT_WAIT 0x7a77
#define ZFT_WAIT_LONGOPT {"wait", required_argument, 0, ZFT_OPT_WAIT}
#define ZFT_WAIT_HELP \
    "  --wait S          seconds to wait for a database another process has locked (default 30)\n"
/* Sets the wait from --wait's value; -1 (nothing set) when it is not a positive number. */
int zft_wait_set(const char *arg);
/* The seconds --wait set (30 when not given). */
double zft_wait_seconds(void);
/* The name of the running command, for messages from shared code (main.c sets it). */
extern const char *zft_command;

/* The options many commands share, parsed in one place: --force, --wait, the model options (when
 * `model` is not NULL) and the figure options (when `style` is not NULL; tools/figure_opts.h).
 * Returns -1 when `opt` is none of them, 0 when it was one and its value is good, else 2 after the
 * usage line for `cmd`. */
struct zf_viz_style;
struct zft_model_opts;
int zft_common_option(const char *cmd, int opt, const char *arg, struct zft_model_opts *model,
                      struct zf_viz_style *style);

/* The exit code of a usage error (zft_usage_error's). */
#define ZFT_EXIT_USAGE 2

/* One option of a command, the one place that describes it: its long name, its getopt value (a
 * letter, which the short options may name too, or a number from 256), and where its value goes: a
 * string, a flag, or a number checked against [lo, hi] and refused in the one line every command
 * gives: "zfviz CMD: --NAME needs WHAT, got 'VALUE'". An option with none of these is the
 * command's own to handle (zft_args_next returns it). */
typedef struct zft_opt {
    const char *name; /* NULL ends a table */
    int val;
    int has_arg;      /* no_argument or required_argument */
    double lo, hi;
    const char *what; /* e.g. "1..256 pixels" */
    int *i;           /* where the value goes: one of these; i and l take whole numbers */
    long *l;
    double *d;
    float *f;
    const char **s; /* the option's text as given */
    int *flag;      /* set to 1 */
    zf_status (*parse)(void *to, const char *arg); /* or parse(to, arg); a failure's message is the usage line */
    void *to;
} zft_opt;
#define ZFT_OWN(n, v, arg) {.name = (n), .val = (v), .has_arg = (arg)}
#define ZFT_STR(name, val, to) {(name), (val), required_argument, .s = (to)}
#define ZFT_FLAG(name, val, to) {(name), (val), no_argument, .flag = (to)}
#define ZFT_INT(name, val, lo, hi, what, to) {(name), (val), required_argument, (lo), (hi), (what), .i = (to)}
#define ZFT_LONG(name, val, lo, hi, what, to) {(name), (val), required_argument, (lo), (hi), (what), .l = (to)}
#define ZFT_REAL(name, val, lo, hi, what, to) {(name), (val), required_argument, (lo), (hi), (what), .d = (to)}
#define ZFT_FLOAT(name, val, lo, hi, what, to) {(name), (val), required_argument, (lo), (hi), (what), .f = (to)}
#define ZFT_PARSE(n, v, fn, dest) {.name = (n), .val = (v), .has_arg = required_argument, .parse = (fn), .to = (dest)}
/* Options several commands take, with the same range and message everywhere. */
#define ZFT_RUN_OPT(to) ZFT_LONG("run", 'r', 1, 1e18, "a run id", (to))
#define ZFT_MIN_ACTIVE_OPT(to) ZFT_REAL("min-active", 'm', 0, 1, "a fraction in [0, 1]", (to))
#define ZFT_NEAR_DEAD_OPT(to) ZFT_FLOAT("near-dead", 'd', 0, 1, "a fraction in [0, 1]", (to))
/* The tile grid of the picture commands (filters, activations): pixels per tap or activation,
 * pixels between tiles, tiles per row, how many tiles. */
#define ZFT_GRID_OPTS(zoom_what, zoom, gap, cols, max) \
    ZFT_INT("zoom", 'z', 1, 256, (zoom_what), (zoom)), ZFT_INT("gap", 'g', 0, 64, "0..64 pixels", (gap)), \
    ZFT_INT("cols", 'c', 1, 4096, "a positive number", (cols)), \
    ZFT_INT("max", 'n', 1, 1 << 20, "a positive number", (max))

/* Shared options a command takes beyond those its model, style and device imply (zft_args). */
enum { ZFT_WITH_FORCE = 1, ZFT_WITH_WAIT = 2, ZFT_WITH_PROJ = 4, ZFT_WITH_PROB = 8 };
#define ZFT_MAX_OPTS 64

/* One command's options: zft_args_next hands the command only its own (ZFT_OWN) options. */
typedef struct zft_args {
    const char *cmd;
    int argc;
    char **argv;
    const char *shortopts;
    const zft_opt *opts;          /* the command's options, ended by a NULL name */
    void (*usage)(void);          /* prints the --help text (--help and -h are always taken) */
    struct zft_model_opts *model; /* the model options (zft_common_option), or NULL */
    struct zf_viz_style *style;   /* the figure options (--no-title, --font-size, --width), or NULL */
    struct zft_device *device;    /* --device and --precision, or NULL */
    int shared;                   /* ZFT_WITH_* */
    int operands;                 /* how many words may follow the options; -1: any number */
    const char *name;             /* the long name of the option just returned, for messages */
    int rc;                       /* the exit code when the command is to stop */
    struct option longopts[ZFT_MAX_OPTS]; /* the getopt_long table made of all of the above */
} zft_args;
/* The next option the command handles itself (optarg its value), or -1 when the options are done.
 * The shared options (zft_common_option, the device options), the value options and --help are
 * taken here. After --help, an unknown option, a bad value or one operand too many (its line
 * printed), and for an option the command does not handle, the command returns a->rc. */
int zft_args_next(zft_args *a);
/* All the options, for a command that has none of its own: 0 when it may go on, else 1 and the
 * command returns a->rc. */
int zft_args_parse(zft_args *a);
/* The index of optarg in `names` ("a|b|c"), or -1 after "zfviz CMD: --NAME is a, b or c, got
 * 'X'" (then the command returns ZFT_EXIT_USAGE). */
int zft_args_choice(const zft_args *a, const char *names);

/* Where a model comes from: --arch A --weights W, or --model FILE.onnx. */
typedef struct zft_model_opts {
    const char *arch;    /* built-in name; default "alexnet" */
    const char *weights; /* random:SEED, .npy folder or .safetensors; default random:0 */
    const char *model;   /* an ONNX file or a name under the model folder */
    const char *preproc; /* preprocessing override (zf_onnx_preproc_parse), or NULL */
} zft_model_opts;

/* The long options every model-taking command accepts, to splice into a getopt_long table:
 * "arch", "weights", "model" with values 'A', 'W', 'M'. */
#define ZFT_MODEL_LONGOPTS \
    {"arch", required_argument, 0, 'A'}, {"weights", required_argument, 0, 'W'}, \
    {"model", required_argument, 0, 'M'}, {"preproc", required_argument, 0, 'P'}
#define ZFT_MODEL_HELP \
    "  --arch A          built-in network: alexnet, alexnet-caffe, zfnet, zfnet-pytorch (the PyTorch\n" \
    "                    rendering: LRN of 30 and 50 channels), or the grey\n" \
    "                    112x112 mini nets alexnet-mini, zfnet-mini\n" \
    "                    (default: the embedded alexnet-mini trained on Fashion-MNIST)\n" \
    "  --weights W       random:SEED, a folder of <layer>.weight.npy/.bias.npy, or a .safetensors file\n" \
    "                    (a mini arch without --weights takes its embedded trained model)\n" \
    "  --model F         a model from zfviz train (.safetensors), alexnet-mini or zfnet-mini (embedded),\n" \
    "                    an ONNX model file, or a model name in $ZFVIZ_MODELS (default\n" \
    "                    ~/.cache/zfviz/models), e.g. zfnet512, instead of --arch/--weights\n" \
    "  --preproc SPEC    override the preprocessing: zoo|torchvision, order=rgb|bgr|grey, scale=1|255,\n" \
    "                    mean=R:G:B, std=R:G:B, resize=exact|short:N (comma-separated)\n"
/* Handles 'A', 'W', 'M', 'P'; returns 1 if the option was one of them. */
int zft_model_option(zft_model_opts *o, int opt, const char *arg);
/* The model embedded in this zfviz for `name` (alexnet-mini, zfnet-mini): 1 and its bytes when
 * there is one (assets/models/NAME.safetensors when the program was built), else 0. */
int zft_embedded_model(const char *name, const void **bytes, size_t *len);
/* Builds the net and loads its weights as `o` says. Without --model/--arch/--weights: the embedded
 * alexnet-mini; a mini --arch without --weights: its embedded model; --model also takes a zfviz
 * .safetensors model file or an embedded model's name. */
zf_status zft_load_model(const zft_model_opts *o, zf_net **out);

/* Where a loaded model came from, so that it can be loaded again exactly (what a scan records) and
 * named truthfully (titles, messages). One rule for every command: zft_load_model's. */
typedef struct zft_model_ref {
    char arch[64];      /* the net's architecture */
    char file[1024];    /* an embedded model's name, or a whole-model file made absolute; "" otherwise */
    char weights[1024]; /* with arch: random:SEED or a weights file/folder made absolute; "" with file */
    char label[1200];   /* "alexnet-mini (embedded)", "zfnet (random:0)", "zfnet (w.safetensors)", "m.onnx" */
} zft_model_ref;
/* zft_load_model, also filling `ref` (when not NULL). */
zf_status zft_load_model_ref(const zft_model_opts *o, zf_net **out, zft_model_ref *ref);

/* Where a net runs: --device auto|cpu|cuda[:N] and --precision fp32|tf32|bf16, through the engine
 * table (zf/engine.h). `auto` (the default) takes the first engine after the CPU whose device 0
 * works and that has every op the command needs, else the CPU engine. The choice is made when the
 * options are parsed (zft_args_next, zft_device_select): a named engine that cannot run (not
 * built, no usable device, an op it lacks) stops the command there with one line and exit 2,
 * never falling back; `--device auto` given, or auto taking a GPU, says which engine on stderr as
 * the command's first line. */
typedef struct zft_device {
    const char *device;    /* NULL: auto */
    const char *precision; /* NULL: fp32 */
    unsigned needs;        /* the ops the command runs (ZF_ENGINE_NEEDS bits); 0: forward only */
    int cpu_bf16;          /* the command runs the cpu through the engine, so --precision bf16
                              applies there (core/bf16.c); elsewhere the cpu refuses it */
    const struct zf_engine_iface *iface; /* chosen by zft_device_select; NULL: not yet */
    int index;             /* the device's index */
    struct zf_engine *eng; /* open engine (zft_device_open), or NULL: the CPU engine's calls direct */
    char note[640];        /* what was chosen, and for auto on the CPU why */
} zft_device;
#define ZFT_OPT_DEVICE 0x7a64
#define ZFT_OPT_PRECISION 0x7a70
#define ZFT_DEVICE_LONGOPTS \
    {"device", required_argument, 0, ZFT_OPT_DEVICE}, {"precision", required_argument, 0, ZFT_OPT_PRECISION}
#define ZFT_DEVICE_HELP \
    "  --device D        auto (default: a GPU when one is usable, else the CPU), cpu, cuda or cuda:N;\n" \
    "                    a GPU that cannot be used is an error (exit 2), never a silent fallback\n" \
    "  --precision P     fp32 (default, the reference); bf16: bfloat16 operands, float32 sums (CPU and GPU;\n" \
    "                    docs/engine.md, docs/cuda.md); tf32 (GPU only)\n"
/* Handles --device and --precision; returns 1 if the option was one of them. */
int zft_device_option(zft_device *d, int opt, const char *arg);
/* Chooses the engine (zf_engine_select) for d->device and d->needs: 0 when the command may go
 * on, else the exit code (2) after one line on stderr. Prints the choice as said above. */
int zft_device_select(const char *cmd, zft_device *d);
/* The device d chose, without its open engine: for a part of a command that opens its own. */
zft_device zft_device_choice(const zft_device *d);
/* An engine of the chosen kind for another net (a command that runs two), the caller's to close. */
zf_status zft_device_open_another(zft_device *d, zf_net *net, int batch, struct zf_engine **out);
/* Opens the chosen engine for `net` at batches of `batch` (net is reserved for it too). */
zf_status zft_device_open(zft_device *d, zf_net *net, int batch);
/* zf_net_forward on the chosen engine; outputs of `layers` (all when NULL, and the last layer)
 * end in net->acts. */
zf_status zft_device_forward(zft_device *d, zf_net *net, const float *input, int n, const int *layers,
                             int n_layers);
/* The forward the deconvnet needs, then the projection into host `out`, on the chosen engine. */
zf_status zft_device_deconv(zft_device *d, zf_net *net, const float *input, int n, const zf_deconv_req *req,
                            float *out);
/* zf_occlusion_run on the chosen engine. */
zf_status zft_device_occlusion(zft_device *d, zf_net *net, const float *input,
                               const struct zf_occlusion_params *p, struct zf_occlusion_result **out);
/* "cpu", "cuda": the engine that runs (open) or was chosen. */
const char *zft_device_name(const zft_device *d);
void zft_device_close(zft_device *d);

/* Splits "a,b,c" into at most `max` pointers into a copy held in buf. Returns the count. */
int zft_split_list(const char *s, char *buf, size_t buflen, const char **items, int max);
/* Parses a whole non-negative integer; -1 if `s` is not one. */
long zft_parse_long(const char *s);
/* mkdir -p; the folders it creates are recorded so that a failed command removes them
 * (zft_fail -> zft_outputs_cleanup). */
zf_status zft_mkdirs(const char *path);
/* mkdir -p of the folder that holds `path` (nothing when it names none). */
zf_status zft_mkdirs_for(const char *path);

/* Output files. Every file a command writes goes through zf_file (core/include/zf/file.h): written
 * whole or not at all, and a file zfviz did not make is never replaced without --force. */
#define ZFT_OPT_FORCE 0x7a66
#define ZFT_FORCE_LONGOPT {"force", no_argument, 0, ZFT_OPT_FORCE}
#define ZFT_FORCE_HELP "  --force           replace output files that zfviz did not make (refused otherwise)\n"
/* Handles ZFT_OPT_FORCE; returns 1 if the option was it. */
int zft_force_option(int opt);
/* Checks before any work that `path` may be written (zf_file_check), naming it when not. */
zf_status zft_output_check(const char *path);
/* Just before writing `path`: zft_output_check again and mkdir -p of its folder. */
zf_status zft_output_prepare(const char *path);
/* A failed command removes what it made: the files it created (zf_file_remove_created) and the
 * folders zft_mkdirs created, newest first; what was there before stays. zft_fail has it run
 * at exit. */
void zft_outputs_cleanup(void);
/* Keeps what was made so far (a checkpoint a failed run can resume from). */
void zft_outputs_keep(void);

/* Monotonic seconds. */
double zft_now(void);

/* A progress bar on stderr, drawn only on a terminal and only once the work has taken more
 * than `delay` seconds; redrawn at most ten times a second. */
typedef struct zft_progress {
    const char *label;
    int64_t total;
    double start, last_draw, delay;
    int drawn;
    const char *unit; /* "img", "pos", ... */
    char extra[96];   /* shown after the ETA (loss, accuracy, ...); the caller fills it */
} zft_progress;
void zft_progress_start(zft_progress *p, const char *label, int64_t total, const char *unit);
void zft_progress_update(zft_progress *p, int64_t done);
void zft_progress_finish(zft_progress *p);

/* Outputs of the net's last layer: its number of classes. */
int zft_net_classes(const zf_net *net);
/* The name of class k of `net`: its own label (zf_net_label) when it carries labels, else the
 * ImageNet name when it has 1000 outputs, else NULL (callers then show the index alone). */
const char *zft_class_name(const zf_net *net, int k);
/* "k (name)", or "k" when the class has no name; returns buf. */
const char *zft_class_text(char *buf, size_t len, const zf_net *net, int k);
/* zft_class_name of every class of `net` (*n of them, entries may be NULL), for renderers that
 * take a name array; the caller frees the array (not the names). NULL when out of memory. */
const char **zft_class_names_new(const zf_net *net, int *n);

/* Default occlusion square and step for the net's input: 32 and 8 pixels at 224 (Zeiler &
 * Fergus), the same fractions (1/7 and 1/28 of the shorter side) at other sizes: 16 and 4 at 112. */
void zft_occlusion_defaults(const zf_net *net, int *patch, int *stride);

#endif
