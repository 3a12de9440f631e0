/* The attribution page of zfviz demo: attribution.png at its documented size, and every map of
 * attribution.npy equal to what `zfviz attribute` writes for the same image file, net and method
 * (a separate program path: its own loading, target choice and method code). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "testutil.h"
#include "zf/io.h"

#define HW (112 * 112)

static const char *const nets[2] = {"alexnet-mini", "zfnet-mini"};
/* the columns as docs/demo.md lists them, and the file name zfviz attribute gives each */
static const char *const methods[7] = {"gradient", "guided-backprop", "deconvnet", "gradcam",
                                       "guided-gradcam", "integrated-gradients", "smoothgrad"};
static const char *const files[7] = {"gradient", "guided-backprop", "deconvnet", "gradcam",
                                     "guided-gradcam", "integrated-gradients", "smoothgrad-gradient"};

Test(demo_attribution, page_size_and_maps_equal_zfviz_attribute_on_the_same_files)
{
    const char *why = tu_demo_missing();
    if (why)
        cr_skip_test("%s", why);
    tu_demo_run run;
    tu_demo_quick(&run);
    const char *dir = tu_tmpdir("demo_attribution"), *out = run.out, *log = run.log;
    const char *z = tu_build("tools/zfviz");
    char p[2048];

    /* docs/demo.md: 1134 x 1238 for the 8 rows of --quick (4 images, 2 nets) at the default style */
    snprintf(p, sizeof p, "%s/attribution.png", out);
    tu_rgb im = tu_png_read(p);
    cr_expect(im.w == 1134 && im.h == 1238, "attribution.png is %dx%d, not 1134x1238", im.w, im.h);
    free(im.px);

    /* the rows' images, as the demo prints them */
    char *text = tu_read_file(log, NULL);
    cr_assert(text);
    const char *at = strstr(text, "each net on ");
    cr_assert(at, "the demo did not print the attribution rows' images");
    char names[4][128];
    cr_assert_eq(sscanf(at, "each net on %127s %127s %127s %127s", names[0], names[1], names[2], names[3]), 4);
    free(text);

    snprintf(p, sizeof p, "%s/attribution.npy", out);
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(p, &t), ZF_OK, "%s: %s", p, zf_last_error());
    cr_assert(t->ndim == 4 && t->shape[0] == 8 && t->shape[1] == 7 && t->shape[2] == 112 && t->shape[3] == 112,
              "attribution.npy is not (8, 7, 112, 112)");
    const float *maps = zf_tensor_f32(t);

    /* the first image through alexnet-mini and the last through zfnet-mini, every method */
    const int rows[2][2] = {{0, 0}, {1, 3}};
    for (int r = 0; r < 2; r++) {
        const int k = rows[r][0], i = rows[r][1];
        char stem[128];
        snprintf(stem, sizeof stem, "%s", names[i]);
        char *dot = strrchr(stem, '.');
        if (dot)
            *dot = '\0';
        for (int m = 0; m < 7; m++) {
            char od[1400];
            snprintf(od, sizeof od, "%s/attr-%s-%s", dir, nets[k], methods[m]);
            int rc = tu_system("'%s' attribute --model %s --input '%s/images/%s' --method %s --out '%s' >/dev/null 2>&1",
                               z, nets[k], out, names[i], methods[m], od);
            cr_assert_eq(rc, 0, "zfviz attribute --model %s --method %s on %s exited %d", nets[k], methods[m], names[i],
                         rc);
            snprintf(p, sizeof p, "%s/%s.%s.npy", od, stem, files[m]);
            zf_tensor *a = NULL;
            cr_assert_eq(zf_npy_read(p, &a), ZF_OK, "%s: %s", p, zf_last_error());
            cr_assert_eq(a->size, HW, "%s holds %lld values", p, (long long)a->size);
            /* the map shown: |attribution| of the one grey channel, Grad-CAM's map as it is */
            const float *ref = zf_tensor_f32(a);
            const float *got = maps + (((size_t)k * 4 + i) * 7 + m) * HW;
            double top = 0, err = 0;
            size_t where = 0;
            for (size_t q = 0; q < HW; q++)
                top = fmax(top, fabs(ref[q]));
            for (size_t q = 0; q < HW; q++) {
                const double want = m == 3 ? ref[q] : fabs(ref[q]), e = fabs(got[q] - want);
                if (e > err) {
                    err = e;
                    where = q;
                }
            }
            cr_expect(top > 0, "%s: an all-zero map", p);
            cr_expect(err <= 1e-4 * top, "%s %s of %s: pixel %zu is %g, zfviz attribute gives %g (max %g)", nets[k],
                      methods[m], names[i], where, got[where], m == 3 ? ref[where] : fabs(ref[where]), top);
            zf_tensor_free(a);
        }
    }
    zf_tensor_free(t);
}
