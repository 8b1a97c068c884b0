/* edgec_runtime.h -- the edgec runtime ABI (C99, no heap, no OS, no libm).
 *
 * Generated code (model.o) defines `const edgec_model <prefix>_model;` laid out exactly as the
 * struct below, plus the entry function it points to. Callers provide one arena of at least
 * `arena_bytes` bytes aligned to `arena_align`, then call edgec_init() once and edgec_run() per
 * inference. Fields may only ever be added at the end of these structs. */
#ifndef EDGEC_RUNTIME_H
#define EDGEC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  EDGEC_OK = 0,
  EDGEC_ERR_NULL = 1,
  EDGEC_ERR_ARENA_SIZE = 2,
  EDGEC_ERR_ARENA_ALIGN = 3,
  EDGEC_ERR_NOT_INITIALIZED = 4
} edgec_status;

/* Element type codes = ONNX TensorProto.DataType numbers. */
enum {
  EDGEC_DTYPE_FLOAT = 1,
  EDGEC_DTYPE_UINT8 = 2,
  EDGEC_DTYPE_INT8 = 3,
  EDGEC_DTYPE_UINT16 = 4,
  EDGEC_DTYPE_INT16 = 5,
  EDGEC_DTYPE_INT32 = 6,
  EDGEC_DTYPE_INT64 = 7,
  EDGEC_DTYPE_BOOL = 9,
  EDGEC_DTYPE_FLOAT16 = 10,
  EDGEC_DTYPE_DOUBLE = 11,
  EDGEC_DTYPE_UINT32 = 12,
  EDGEC_DTYPE_UINT64 = 13,
  EDGEC_DTYPE_BFLOAT16 = 16,
  EDGEC_DTYPE_UINT4 = 21,
  EDGEC_DTYPE_INT4 = 22
};

/* One graph input or output. `bytes` is the packed size (4-bit types: two per byte). */
typedef struct edgec_tensor_desc {
  const char *name;
  int32_t dtype;
  int32_t rank;
  const int32_t *dims;
  uint32_t bytes;
} edgec_tensor_desc;

struct edgec_ctx;

typedef void (*edgec_entry_fn)(const void *const *inputs, void *const *outputs, uint8_t *arena,
                               struct edgec_ctx *ctx);

typedef struct edgec_model {
  const char *name;
  uint32_t num_inputs, num_outputs;
  const edgec_tensor_desc *inputs, *outputs;
  uint32_t arena_bytes, arena_align;
  uint32_t num_kernels;
  const char *const *kernel_names;
  edgec_entry_fn entry;
} edgec_model;

/* Called before (is_exit = 0) and after (is_exit = 1) each kernel when set. */
typedef void (*edgec_kernel_hook)(void *user, uint32_t kernel_index, int is_exit);

typedef struct edgec_ctx {
  const edgec_model *model;
  uint8_t *arena;
  edgec_kernel_hook hook;
  void *hook_user;
  uint32_t initialized;
} edgec_ctx;

/* Checks arena_bytes >= model->arena_bytes and the arena's alignment; clears the hook. */
edgec_status edgec_init(edgec_ctx *ctx, const edgec_model *model, void *arena, size_t arena_bytes);
/* Null checks, then model->entry(inputs, outputs, ctx->arena, ctx). */
edgec_status edgec_run(edgec_ctx *ctx, const void *const *inputs, void *const *outputs);
void edgec_set_kernel_hook(edgec_ctx *ctx, edgec_kernel_hook hook, void *user);
const char *edgec_status_str(edgec_status s);
/* Bits per element of an ONNX dtype code, 0 if unknown. */
size_t edgec_dtype_bits(int32_t dtype);

/* Called by generated code before (is_exit = 0) and after (1) each kernel; calls ctx->hook if set. */
void edgec_rt_kernel_hook(struct edgec_ctx *ctx, uint32_t kernel_index, int32_t is_exit);

#ifdef __cplusplus
}
#endif

#endif /* EDGEC_RUNTIME_H */
