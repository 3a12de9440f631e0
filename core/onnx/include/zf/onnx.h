/* ONNX import: ONNX model files (the model zoo's bvlc_alexnet and zfnet512, torchvision exports)
 * mapped onto the engine's chain of layers, their preprocessing, and ONNX tensor files. */
#ifndef ZF_ONNX_H
#define ZF_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "zf/net.h"
#include "zf/status.h"
#include "zf/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A graph input given a value at load time: it becomes a constant (a weight, a shape). */
typedef struct zf_onnx_binding {
    const char *name;
    const zf_tensor *value; /* float32, or int32 for shape and index inputs */
} zf_onnx_binding;

typedef struct zf_onnx_options {
    /* Preprocessing spec applied on top of the recognised model's (zf_onnx_preproc_parse), or NULL. */
    const char *preproc;
    /* Input size for graphs whose input height/width are symbolic; 0 refuses such graphs. */
    int in_h, in_w;
    /* Graph inputs supplied as constants. */
    const zf_onnx_binding *bindings;
    int n_bindings;
    /* Refuse models with more parameters than this (0: 1 << 30 floats, 4 GiB): a tiny file can
     * ask for a huge weight through ConstantOfShape. */
    int64_t max_params;
} zf_onnx_options;

/* Loads an ONNX file into a finalized net with its weights, Caffe-style layer names (conv1, relu1,
 * norm1, pool1, ..., fc6, relu6, drop6, ..., fc8, prob; by position) and each layer's graph name
 * (the ONNX value it computes) so that zf_net_find accepts both. net->arch is the recognised
 * model ("bvlc_alexnet", "zfnet512", "torchvision-alexnet") or "onnx"; net->pre is its
 * preprocessing (zf_onnx_preproc_for), then opts->preproc. Anything the engine cannot run is
 * refused with one message naming the node, its op and the reason. opts may be NULL. */
zf_status zf_onnx_load(const char *path, const zf_onnx_options *opts, zf_net **out);
/* The same from memory; `name` labels messages. External data files are refused (no folder). */
zf_status zf_onnx_load_buffer(const void *data, size_t len, const char *name,
                              const zf_onnx_options *opts, zf_net **out);

/* A model by file path or by name: "zfnet512" finds zfnet512.onnx, or the highest-opset
 * zfnet512-<N>.onnx, in the model folder (zf_onnx_model_dir). bvlc_alexnet and bvlcalexnet
 * name the same files. */
zf_status zf_onnx_open_model(const char *spec, const zf_onnx_options *opts, zf_net **out);
/* The model folder: $ZFVIZ_MODELS, else $XDG_CACHE_HOME/zfviz/models, else
 * ~/.cache/zfviz/models. Written to buf; returns buf. */
const char *zf_onnx_model_dir(char *buf, size_t len);
/* Resolves a model name or path to a file path as zf_onnx_open_model does. */
zf_status zf_onnx_resolve_model(const char *spec, char *path, size_t len);

/* Preprocessing of a recognised model: "bvlc_alexnet" and "zfnet512" as the zoo's scripts do it
 * (RGB resized to exactly the input size, 0-255, minus R 123.68 G 116.779 B 103.939, then BGR);
 * "torchvision-alexnet" and anything else as torchvision does (short side 256, centre crop,
 * 0-1, ImageNet mean and std, RGB). Returns 1 if `arch` has an entry of its own, 0 for the default. */
int zf_onnx_preproc_for(const char *arch, zf_preproc *out);

/* Applies a preprocessing spec to *pre: comma-separated items, each a preset ("zoo" (= "caffe"),
 * "torchvision") or key=value: order=rgb|bgr, scale=1|255, mean=R:G:B, std=R:G:B (in the scaled
 * units), resize=exact|short:N. Example: "zoo,resize=short:256". */
zf_status zf_onnx_preproc_parse(const char *spec, zf_preproc *pre);
/* One line describing *pre, e.g. "BGR, 0-255, mean 123.68 116.779 103.939, std 1 1 1, resize to
 * 224x224 (no crop)". Returns buf. */
const char *zf_onnx_preproc_format(const zf_preproc *pre, int in_h, int in_w, char *buf,
                                   size_t len);

/* One row per layer of the name map: Caffe-style name, graph name, op, output shape. */
typedef struct zf_onnx_name {
    const char *caffe;
    const char *graph;
} zf_onnx_name;
/* Fills up to `max` entries for `net` (pointers into the net); returns the layer count. */
int zf_onnx_names(const zf_net *net, zf_onnx_name *names, int max);

/* An ONNX TensorProto file (the backend tests' input_0.pb, output_0.pb): float32/float64 become
 * float32, int64/int32/int8/uint8/bool become int32 (an int64 out of range is an error).
 * Up to 4 dimensions; a scalar becomes shape (1). */
zf_status zf_onnx_read_tensor(const char *path, zf_tensor **out);
/* Writes a float32 tensor as an ONNX TensorProto file (for fixtures and tests). */
zf_status zf_onnx_write_tensor(const char *path, const char *name, const zf_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
