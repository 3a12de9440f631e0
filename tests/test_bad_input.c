/* Bad and awkward input to the zfviz commands: lists that are devices, pipes or too long,
 * non-finite values, units that never fire, scans that read nothing, folders found the same way by
 * every command, layer dumps of the input, and scans whose images moved or went missing. Each test
 * runs the built program and checks exit codes, the lines on stderr and the files written. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zf/io.h"
#include "zf/tensor.h"

static const char *zfviz(void)
{
    static char bin[4096];
    snprintf(bin, sizeof bin, "%s", tu_build("tools/zfviz"));
    struct stat sb;
    if (stat(bin, &sb) != 0)
        cr_skip_test("tools/zfviz is not built");
    return bin;
}

static const char *in_dir(const char *dir, const char *name)
{
    static char buf[8][4096];
    static int slot;
    char *b = buf[slot++ % 8], d[2048];
    snprintf(d, sizeof d, "%s", dir); /* dir may be an earlier result */
    cr_assert(strlen(dir) < sizeof d && strlen(name) < 2000);
    snprintf(b, 4096, "%.2000s/%.2000s", d, name);
    return b;
}

/* A w x h PNG whose pixels are `v`, or a gradient when v < 0. */
static void write_png(const char *path, int w, int h, int v)
{
    zf_image *img = zf_image_new(w, h);
    cr_assert(img);
    for (int i = 0; i < w * h * 3; i++)
        img->rgb[i] = (uint8_t)(v >= 0 ? v : (i * 7 + i / (3 * w) * 13) % 256);
    cr_assert_eq(zf_image_save_png(path, img), ZF_OK, "%s", zf_last_error());
    zf_image_free(img);
}

/* A float32 .npy (format 1.0, as numpy writes it) of the given shape holding x. */
static void write_npy(const char *path, const float *x, int64_t n, int64_t c, int64_t h, int64_t w)
{
    char head[128];
    int len = snprintf(head, sizeof head, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld, "
                       "%lld, %lld), }", (long long)n, (long long)c, (long long)h, (long long)w);
    int total = (10 + len + 1 + 63) / 64 * 64; /* magic, version, length, dict, '\n': 64-byte aligned */
    while (10 + len + 1 < total)
        head[len++] = ' ';
    head[len++] = '\n';
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
    size_t count = (size_t)(n * c * h * w);
    cr_assert(fwrite(pre, 1, 10, f) == 10 && fwrite(head, 1, (size_t)len, f) == (size_t)len &&
              fwrite(x, sizeof(float), count, f) == count);
    cr_assert_eq(fclose(f), 0);
}

/* Lines in a file (-1 if it cannot be read). */
static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, ch, last = '\n';
    while ((ch = fgetc(f)) != EOF) {
        n += ch == '\n';
        last = ch;
    }
    fclose(f);
    return n + (last != '\n');
}

static int grep(const char *path, const char *text)
{
    return tu_system("grep -q -F -- '%s' '%s'", text, path) == 0;
}

/* `what` was refused: it exited non-zero (with `bounded`, also neither timed out nor was killed:
 * 124, 137) and said so in one line on err that holds each of the NULL-terminated words. */
static void expect_refused(int rc, int bounded, const char *err, const char *what, const char *const *words)
{
    cr_assert(rc != 0 && (!bounded || (rc != 124 && rc != 137)), "%s: exit %d", what, rc);
    cr_assert_eq(count_lines(err), 1, "%s", what);
    for (int i = 0; words[i]; i++)
        cr_assert(grep(err, words[i]), "%s: stderr lacks '%s'", what, words[i]);
}

/* tu_system gives the shell's exit status (-1 when it did not exit). */
static int rc_of(int status)
{
    return status;
}

/* ---- item 2: list files ---- */

/* A cap on the address space of the commands that, before the fix, read an endless list until
 * memory ran out; the sanitizer's shadow memory needs the whole space, and its builds have the fix. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_CAP ""
#else
#define MEM_CAP "ulimit -v 3000000; "
#endif

Test(bad_input, device_as_list_refused_at_once)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_list_dev");
    /* Before the fix this read /dev/zero until memory ran out: the limits keep the test safe. */
    int rc = rc_of(tu_system(MEM_CAP "timeout 20 '%s' scan --images /dev/zero --db '%s' "
                             "2> '%s'", bin, in_dir(dir, "d.db"), in_dir(dir, "err")));
    expect_refused(rc, 1, in_dir(dir, "err"), "scan", (const char *const[]){"/dev/zero: ", "device", NULL});
    rc = rc_of(tu_system(MEM_CAP "timeout 20 '%s' compare alexnet-mini zfnet-mini "
                         "--images /dev/zero -o '%s' 2> '%s'", bin, in_dir(dir, "c.png"),
                         in_dir(dir, "err2")));
    expect_refused(rc, 1, in_dir(dir, "err2"), "compare", (const char *const[]){"/dev/zero: ", NULL});
}

Test(bad_input, folder_where_one_image_is_taken_refused)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_list_dir");
    write_png(in_dir(dir, "a.png"), 30, 30, -1);
    int rc = rc_of(tu_system("'%s' deconv --model alexnet-mini --input '%s' --layer conv1 --channel 0 --out '%s' 2> '%s'",
                             bin, dir, in_dir(dir, "y.npy"), in_dir(dir, "err")));
    expect_refused(rc, 0, in_dir(dir, "err"), "deconv", (const char *const[]){dir, "is a folder", NULL});
}

Test(bad_input, overlong_list_line_refused)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_list_long");
    /* An endless line through a pipe: refused at the bound, not read to the end of memory. */
    int rc = rc_of(tu_system(MEM_CAP "tr '\\0' a < /dev/zero | timeout 20 '%s' scan "
                             "--images - --db '%s' 2> '%s'", bin, in_dir(dir, "d.db"),
                             in_dir(dir, "err")));
    expect_refused(rc, 1, in_dir(dir, "err"), "scan", (const char *const[]){"longer than", NULL});
}

Test(bad_input, list_from_stdin_and_fifo_accepted)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_list_pipe");
    write_png(in_dir(dir, "a.png"), 40, 30, -1);
    write_png(in_dir(dir, "b.png"), 30, 40, 90);
    int rc = rc_of(tu_system("cd '%s' && printf 'a.png\\n# comment\\n\\nb.png\\n' | timeout 60 '%s' "
                             "scan --images - --db s.db > out 2> err", dir, bin));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert(grep(in_dir(dir, "out"), "2 images scanned (2 ok, 0 failed)"));
    cr_assert_eq(tu_system("mkfifo '%s'", in_dir(dir, "fifo")), 0);
    rc = rc_of(tu_system("cd '%s' && (printf '%s\\n' > fifo &) && timeout 60 '%s' scan --images fifo "
                         "--db f.db > out2 2> err2", dir, in_dir(dir, "b.png"), bin));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert(grep(in_dir(dir, "out2"), "1 images scanned (1 ok, 0 failed)"));
}

/* ---- item 4: non-finite input, units that never fire, scans that read nothing ---- */

Test(bad_input, nonfinite_npy_refused_naming_the_file)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_nan");
    const int64_t per = 112 * 112;
    float *x = malloc(sizeof(float) * per);
    tu_fill_uniform(x, (size_t)per, 5, -1, 1);
    x[777] = NAN;
    write_npy(in_dir(dir, "nan.npy"), x, 1, 1, 112, 112);
    x[777] = INFINITY;
    write_npy(in_dir(dir, "inf.npy"), x, 1, 1, 112, 112);
    free(x);
    const char *cmds[3] = {"forward --input '%s'", "deconv --layer conv1 --channel 0 --out y.npy --input '%s'",
                           "occlude --out occ --input '%s'"};
    const char *files[2] = {"nan.npy", "inf.npy"};
    for (int c = 0; c < 3; c++)
        for (int f = 0; f < 2; f++) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd, cmds[c], in_dir(dir, files[f]));
            int rc = rc_of(tu_system("cd '%s' && '%s' %s --model alexnet-mini > out 2> err", dir, bin, cmd));
            expect_refused(rc, 0, in_dir(dir, "err"), cmd, (const char *const[]){files[f], f ? "Inf" : "NaN", NULL});
        }
}

Test(bad_input, nonfinite_weights_refused_at_load)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_nan_weights");
    /* The embedded model's file with one weight made NaN: 8 bytes of header length, the JSON
     * header, then the tensors' data. */
    FILE *f = fopen(tu_src("assets/models/alexnet-mini.safetensors"), "rb");
    if (!f)
        cr_skip_test("assets/models/alexnet-mini.safetensors is not there");
    static uint8_t buf[1 << 24];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert(n > 8 && n < sizeof buf);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    cr_assert(8 + hlen + 64 < n);
    float nan = NAN;
    memcpy(buf + 8 + hlen + 40, &nan, 4);
    f = fopen(in_dir(dir, "nan.safetensors"), "wb");
    cr_assert(f && fwrite(buf, 1, n, f) == n);
    fclose(f);
    float *x = malloc(sizeof(float) * 112 * 112);
    tu_fill_uniform(x, 112 * 112, 3, -1, 1);
    write_npy(in_dir(dir, "x.npy"), x, 1, 1, 112, 112);
    free(x);
    int rc = rc_of(tu_system("cd '%s' && '%s' forward --model nan.safetensors --input x.npy > out 2> err", dir, bin));
    expect_refused(rc, 0, in_dir(dir, "err"), "forward with a NaN weight",
                   (const char *const[]){"nan.safetensors", "NaN", NULL});
}

Test(bad_input, scan_skips_an_image_that_preprocesses_to_nonfinite)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_scan_nan");
    const char *imgs = in_dir(dir, "imgs");
    mkdir(imgs, 0755);
    /* std 1e-37 at 0-255 scale: black stays 0, white becomes 255 / 1e-37 = Inf. */
    write_png(in_dir(imgs, "black.png"), 40, 40, 0);
    write_png(in_dir(imgs, "white.png"), 40, 40, 255);
    int rc = rc_of(tu_system("cd '%s' && '%s' scan --preproc scale=255,mean=0:0:0,std=1e-37:1e-37:1e-37 "
                             "--images imgs --db s.db > out 2> err", dir, bin));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert(grep(in_dir(dir, "err"), "white.png"));
    cr_assert(grep(in_dir(dir, "err"), "non-finite"));
    cr_assert(!grep(in_dir(dir, "err"), "black.png"));
    cr_assert(grep(in_dir(dir, "out"), "2 images scanned (1 ok, 1 failed)"));
}

Test(bad_input, deconv_of_a_unit_that_never_fires_warns)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_silent");
    const int64_t per = 112 * 112;
    float *x = calloc(2 * per, sizeof(float));
    /* image 0 all zero: conv1 is its bias alone; image 1 random */
    tu_fill_uniform(x + per, (size_t)per, 9, -2, 2);
    write_npy(in_dir(dir, "x.npy"), x, 2, 1, 112, 112);
    write_npy(in_dir(dir, "z.npy"), x, 1, 1, 112, 112);
    free(x);
    cr_assert_eq(tu_system("cd '%s' && '%s' forward --input x.npy --dump conv1 --out d --top 0 2> /dev/null",
                           dir, bin), 0);
    zf_tensor *a = NULL;
    cr_assert_eq(zf_npy_read(in_dir(dir, "d/conv1.npy"), &a), ZF_OK, "%s", zf_last_error());
    /* A channel that is <= 0 everywhere on image 0 and > 0 somewhere on image 1. */
    int C = (int)a->shape[1], hw = (int)(a->shape[2] * a->shape[3]), chan = -1;
    const float *v = zf_tensor_f32(a);
    float max0 = 0;
    for (int c = 0; c < C && chan < 0; c++) {
        float m0 = -INFINITY, m1 = -INFINITY;
        for (int p = 0; p < hw; p++) {
            m0 = fmaxf(m0, v[(size_t)c * hw + p]);
            m1 = fmaxf(m1, v[((size_t)C + c) * hw + p]);
        }
        if (m0 <= 0 && m1 > 0) {
            chan = c;
            max0 = m0;
        }
    }
    zf_tensor_free(a);
    if (chan < 0)
        cr_skip_test("no conv1 channel silent on a zero input and firing on noise");
    /* Both images: a warning for image 0, the reconstruction written, exit 0. */
    int rc = rc_of(tu_system("cd '%s' && '%s' deconv --input x.npy --layer conv1 --channel %d --out y.npy "
                             "> out 2> err", dir, bin, chan));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert(grep(in_dir(dir, "err"), "does not fire"));
    cr_assert(grep(in_dir(dir, "err"), "image 0"));
    cr_assert(!grep(in_dir(dir, "err"), "image 1"));
    /* the value it had, as the dump shows it */
    char text[4096] = "";
    FILE *f = fopen(in_dir(dir, "err"), "r");
    cr_assert(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = 0;
    const char *at = strstr(text, "before the ReLU: ");
    cr_assert(at, "no value named: %s", text);
    double said = strtod(at + strlen("before the ReLU: "), NULL);
    cr_assert(fabs(said - max0) <= 1e-4 * fabs(max0) + 1e-6, "said %g, the dump's max %g", said, (double)max0);
    struct stat sb;
    cr_assert_eq(stat(in_dir(dir, "y.npy"), &sb), 0);
    /* Only the silent image: nothing was computed, non-zero exit, nothing written. */
    rc = rc_of(tu_system("cd '%s' && '%s' deconv --input z.npy --layer conv1 --channel %d --out z_out.npy "
                         "> out 2> err", dir, bin, chan));
    cr_assert(rc != 0);
    cr_assert(grep(in_dir(dir, "err"), "does not fire"));
    cr_assert_neq(stat(in_dir(dir, "z_out.npy"), &sb), 0);
}

Test(bad_input, scan_that_reads_no_image_fails_and_dead_report_refuse)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_scan_none");
    const char *imgs = in_dir(dir, "imgs");
    mkdir(imgs, 0755);
    cr_assert_eq(tu_system("echo not a picture > '%s'; : > '%s'", in_dir(imgs, "a.jpg"),
                           in_dir(imgs, "b.png")), 0);
    int rc = rc_of(tu_system("cd '%s' && '%s' scan --images imgs --db s.db > out 2> err", dir, bin));
    cr_assert(rc != 0, "scan of corrupt images only: exit 0");
    cr_assert(grep(in_dir(dir, "err"), "no image could be read"));
    rc = rc_of(tu_system("cd '%s' && '%s' dead --db s.db > dout 2> derr", dir, bin));
    expect_refused(rc, 0, in_dir(dir, "derr"), "dead on a run of 0 images",
                   (const char *const[]){"has no images", NULL});
    rc = rc_of(tu_system("cd '%s' && '%s' report --db s.db -o r.pdf > rout 2> rerr", dir, bin));
    expect_refused(rc, 0, in_dir(dir, "rerr"), "report on a run of 0 images",
                   (const char *const[]){"has no images", NULL});
}

/* ---- item 8: folders, dumps, moved and missing images ---- */

Test(bad_input, nested_folders_found_by_every_command)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_nested");
    cr_assert_eq(tu_system("mkdir -p '%s/data/shirt/deep/er' '%s/data/shoe/x'", dir, dir), 0);
    write_png(in_dir(dir, "data/shirt/deep/er/a.png"), 50, 40, -1);
    write_png(in_dir(dir, "data/shirt/b.png"), 40, 50, 30);
    write_png(in_dir(dir, "data/shoe/x/c.png"), 44, 44, 200);
    int rc = rc_of(tu_system("cd '%s' && '%s' scan --images data --db s.db > sout 2>&1", dir, bin));
    cr_assert_eq(rc, 0);
    cr_assert(grep(in_dir(dir, "sout"), "3 images scanned"));
    rc = rc_of(tu_system("cd '%s' && '%s' compare alexnet-mini zfnet-mini --images data -o c.png > cout 2>&1",
                         dir, bin));
    cr_assert_eq(rc, 0);
    cr_assert(grep(in_dir(dir, "cout"), "(3 images)"));
    rc = rc_of(tu_system("cd '%s' && '%s' forward --input data > fout 2>&1", dir, bin));
    cr_assert_eq(rc, 0);
    cr_assert(grep(in_dir(dir, "fout"), "image 2 ("));
    cr_assert(grep(in_dir(dir, "fout"), "/er/a.png):"));
    cr_assert(!grep(in_dir(dir, "fout"), "image 3 ("));
    /* eval (and train) take one folder per class: the ten classes of the mini nets, each class's
     * images found recursively, one of them nested. */
    for (int k = 0; k < 10; k++) {
        char sub[64];
        snprintf(sub, sizeof sub, "classes/c%d/%s", k, k == 3 ? "a/b" : ".");
        cr_assert_eq(tu_system("mkdir -p '%s/%s'", dir, sub), 0);
        snprintf(sub, sizeof sub, "classes/c%d/%s/i.png", k, k == 3 ? "a/b" : ".");
        write_png(in_dir(dir, sub), 30, 30, 20 * k);
    }
    rc = rc_of(tu_system("cd '%s' && '%s' eval --data classes --batch 4 > eout 2>&1", dir, bin));
    cr_assert_eq(rc, 0);
    cr_assert(grep(in_dir(dir, "eout"), "(10 images)"));
}

Test(bad_input, forward_dumps_input_and_all_layers)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_dump");
    const int64_t per = 112 * 112;
    float *x = malloc(sizeof(float) * 2 * per);
    tu_fill_uniform(x, (size_t)(2 * per), 17, -3, 3);
    write_npy(in_dir(dir, "x.npy"), x, 2, 1, 112, 112);
    int rc = rc_of(tu_system("cd '%s' && '%s' forward --input x.npy --dump input --out d1 --top 0 2> err",
                             dir, bin));
    cr_assert_eq(rc, 0, "exit %d", rc);
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(in_dir(dir, "d1/input.npy"), &t), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(t->ndim, 4);
    cr_assert(t->shape[0] == 2 && t->shape[1] == 1 && t->shape[2] == 112 && t->shape[3] == 112);
    cr_assert_eq(memcmp(zf_tensor_f32(t), x, sizeof(float) * 2 * per), 0);
    zf_tensor_free(t);
    free(x);
    /* all: the input and one file per layer that `zfviz info` lists. */
    rc = rc_of(tu_system("cd '%s' && '%s' forward --input x.npy --dump all --out d2 --top 0 2> err", dir, bin));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert_eq(tu_system("test -f '%s/d2/input.npy'", dir), 0);
    cr_assert_eq(tu_system("cd '%s' && '%s' info > info.txt", dir, bin), 0);
    const char *layers[] = {"conv1", "relu1", "pool1", "conv5", "fc6", "fc8", "prob"};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        if (!grep(in_dir(dir, "info.txt"), layers[i]))
            continue;
        cr_assert_eq(tu_system("test -f '%s/d2/%s.npy'", dir, layers[i]), 0, "%s.npy missing", layers[i]);
    }
    cr_assert_eq(zf_npy_read(in_dir(dir, "d2/conv1.npy"), &t), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(t->shape[0], 2);
    zf_tensor_free(t);
    /* an image input: the dump is what the net saw, the image preprocessed. */
    write_png(in_dir(dir, "g.png"), 60, 50, -1);
    rc = rc_of(tu_system("cd '%s' && '%s' forward --input g.png --dump input --out d3 --top 0 2> err", dir, bin));
    cr_assert_eq(rc, 0);
    cr_assert_eq(zf_npy_read(in_dir(dir, "d3/input.npy"), &t), ZF_OK, "%s", zf_last_error());
    cr_assert(t->shape[0] == 1 && t->shape[1] == 1 && t->shape[2] == 112 && t->shape[3] == 112);
    zf_tensor_free(t);
}

/* A scan of three images in DIR/old (batch 1: every image its own forward). */
static void scan_three(const char *dir)
{
    cr_assert_eq(tu_system("mkdir -p '%s/old'", dir), 0);
    write_png(in_dir(dir, "old/a.png"), 50, 40, -1);
    write_png(in_dir(dir, "old/b.png"), 40, 50, 60);
    write_png(in_dir(dir, "old/c.png"), 44, 44, 200);
    cr_assert_eq(tu_system("cd '%s' && '%s' scan --images old --db s.db --layers conv1 > /dev/null 2>&1",
                           dir, zfviz()),
                 0);
}

Test(bad_input, reroot_finds_moved_images)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_reroot");
    scan_three(dir);
    cr_assert_eq(tu_system("cd '%s' && mv old new", dir), 0);
    char real[4096];
    cr_assert(realpath(dir, real));
    int rc = rc_of(tu_system("cd '%s' && '%s' sheet --db s.db --layer conv1 --units 0,1 "
                             "--reroot '%s/old=%s/new' -o s.png > out 2> err", dir, bin, real, real));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert(!grep(in_dir(dir, "err"), "missing"));
    cr_assert_eq(tu_system("test -s '%s/s.png'", dir), 0);
    rc = rc_of(tu_system("cd '%s' && '%s' topk --db s.db --layer conv1 --unit 0 --deconv "
                         "--reroot '%s/old=%s/new' > tout 2> terr", dir, bin, real, real));
    cr_assert_eq(rc, 0, "exit %d", rc);
}

Test(bad_input, missing_image_draws_a_placeholder)
{
    const char *bin = zfviz();
    const char *dir = tu_tmpdir("bad_missing");
    scan_three(dir);
    cr_assert_eq(tu_system("rm '%s/old/b.png'", dir), 0);
    int rc = rc_of(tu_system("cd '%s' && '%s' sheet --db s.db --layer conv1 --units 0,1,2 -o s.png "
                             "> out 2> err", dir, bin));
    cr_assert_eq(rc, 0, "exit %d", rc);
    cr_assert(grep(in_dir(dir, "err"), "b.png"));
    cr_assert(grep(in_dir(dir, "err"), "missing"));
    cr_assert_eq(tu_system("test -s '%s/s.png'", dir), 0);
}
