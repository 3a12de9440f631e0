/* Whole models in one file: a .safetensors whose metadata says how to build the net (the built-in
 * arch, input channels, classes and their names, preprocessing), as `zfviz train` writes them, and
 * the models embedded in the zfviz program. */
#ifndef ZF_MODEL_H
#define ZF_MODEL_H

#include <stddef.h>
#include <stdio.h>

#include "zf/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata keys (values are strings, as safetensors requires):
 *   arch            built-in architecture (alexnet-mini, zfnet-mini, alexnet, ...)
 *   zfviz.in_c      input channels, "1" or "3"
 *   zfviz.classes   number of outputs
 *   zfviz.labels    class names, one per line (optional)
 *   zfviz.order     rgb | bgr | grey;  zfviz.scale "1" or "255";  zfviz.mean / zfviz.std "a,b,c";
 *   zfviz.resize    exact | short:N
 * plus whatever the writer adds (the trainer records its command line, dataset and accuracy). */

typedef struct zf_meta {
    int n;
    char **keys, **values;
} zf_meta;
void zf_meta_free(zf_meta *m);
/* The value of `key`, or NULL. */
const char *zf_meta_get(const zf_meta *m, const char *key);

/* 1 if the file at `path` is a safetensors file whose metadata describes a whole zfviz model. */
int zf_model_is_whole(const char *path);
zf_status zf_model_read_meta(const char *path, zf_meta *out);
zf_status zf_model_load(const char *path, zf_net **out);
/* The same from bytes in memory (an embedded model); `name` is used in messages. */
zf_status zf_model_load_memory(const void *bytes, size_t len, const char *name, zf_net **out);
/* Writes the net with its description and the extra pairs meta_kv (NULL-terminated key, value, ...);
 * `momentum`, when not NULL, is saved too (a trainer checkpoint). Atomic (written aside, renamed). */
zf_status zf_model_save(const zf_net *net, const char *path, const char *const *meta_kv,
                        const float *momentum);
/* Loads a checkpoint written with a momentum block: the weights into net, the block into momentum
 * (laid out like net->params), its metadata into meta (when not NULL). */
zf_status zf_model_load_checkpoint(zf_net *net, const char *path, float *momentum, zf_meta *meta);

/* The reader under all of these: metadata to meta_fn, tensors into net (when not NULL). */
zf_status zf_safetensors_stream_read(FILE *f, const char *name, zf_net *net, float *extra,
                                     void (*meta_fn)(void *ctx, const char *key, const char *value),
                                     void *ctx);

#ifdef __cplusplus
}
#endif
#endif
