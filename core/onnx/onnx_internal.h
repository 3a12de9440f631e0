/* Shared by the ONNX import's files: protobuf unpacking and constant tensors. Not installed. */
#ifndef ZF_ONNX_INTERNAL_H
#define ZF_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "zf/onnx.h"

#define OX_MAX_DIMS 8

/* Unpacks a serialized message of type `desc` from buf (after checking that its nesting stays
 * within a fixed depth: protobuf-c recurses once per nested message and has no limit of its
 * own). NULL with the error recorded on malformed input; `name` labels the message. */
ProtobufCMessage *ox_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
                            size_t len, const char *name);

/* The allocator messages from ox_unpack use (free them with it too). */
extern ProtobufCAllocator ox_allocator;

/* ox_unpack of the whole file at path (mapped read-only when possible, and only while unpacking:
 * protobuf-c copies what it keeps). The file's read error, or ZF_ERR_FORMAT where the message is
 * malformed (*out NULL); both recorded. */
zf_status ox_unpack_file(const ProtobufCMessageDescriptor *desc, const char *path,
                         ProtobufCMessage **out);

/* A constant tensor: an initializer or Constant (read lazily from its TensorProto), the output
 * of ConstantOfShape (a fill value), or a value the loader computed or was given (owned). */
typedef enum { OX_SRC_TENSOR, OX_SRC_FILL, OX_SRC_OWNED } ox_src;

typedef struct ox_const {
    ox_src src;
    int dtype;       /* ONNX element type of the data: FLOAT, DOUBLE, INT64, INT32, ... */
    int ndim;
    int64_t dims[OX_MAX_DIMS];
    int64_t count;
    const Onnx__TensorProto *tp; /* OX_SRC_TENSOR */
    double fill;                 /* OX_SRC_FILL */
    double *owned;               /* OX_SRC_OWNED: count values */
    int transposed;  /* a 2-D constant read as the transpose of its source (Transpose folded) */
} ox_const;

/* Fills c from a TensorProto after checking its type, shape and that its data is all there
 * (inline or external). `what` names it in messages ("initializer 'conv1_w_0'"). */
zf_status ox_const_from_tensor(ox_const *c, const Onnx__TensorProto *tp, const char *what);
/* Reads all c->count values as float32 in logical order (transposed if c->transposed), times
 * `scale`. External data is read from files under `dir` (NULL refuses external data). */
zf_status ox_const_read_f32(const ox_const *c, const char *dir, float *dst, float scale,
                            const char *what);
/* Reads the values as int64 (shapes, axes); at most `max`. */
zf_status ox_const_read_i64(const ox_const *c, const char *dir, int64_t *dst, int64_t max,
                            const char *what);
/* Reads all values as doubles in logical order, whatever their type. A value the loader computed
 * may be NaN where it stands for the batch size of a graph that leaves it symbolic; the integer
 * reader refuses those. */
zf_status ox_const_read_f64(const ox_const *c, const char *dir, double *dst, const char *what);
/* Sets net->arch and net->pre from the layers when they are a model of the built-in table. */
void ox_recognise(zf_net *net);

/* A string from the file fit for a one-line message: printable ASCII, at most 60 characters.
 * Points into one of four rotating thread-local buffers. */
const char *ox_shown(const char *s);

/* Element type name ("float", "int64", ...). */
const char *ox_dtype_name(int dtype);

#endif
