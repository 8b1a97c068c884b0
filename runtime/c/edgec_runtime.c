/* edgec_runtime.c -- the edgec runtime (C99, no heap, no OS, no libm). */
#include "edgec_runtime.h"

edgec_status edgec_init(edgec_ctx *ctx, const edgec_model *model, void *arena, size_t arena_bytes) {
  uint32_t align;
  if (ctx == NULL) {
    return EDGEC_ERR_NULL;
  }
  ctx->initialized = 0;
  ctx->hook = NULL;
  ctx->hook_user = NULL;
  if (model == NULL || model->entry == NULL) {
    return EDGEC_ERR_NULL;
  }
  if (model->arena_bytes > 0 && arena == NULL) {
    return EDGEC_ERR_NULL;
  }
  if (arena_bytes < model->arena_bytes) {
    return EDGEC_ERR_ARENA_SIZE;
  }
  align = model->arena_align;
  if (align > 1 && ((uintptr_t)arena % align) != 0) {
    return EDGEC_ERR_ARENA_ALIGN;
  }
  ctx->model = model;
  ctx->arena = (uint8_t *)arena;
  ctx->initialized = 1;
  return EDGEC_OK;
}

edgec_status edgec_run(edgec_ctx *ctx, const void *const *inputs, void *const *outputs) {
  const edgec_model *m;
  if (ctx == NULL) {
    return EDGEC_ERR_NULL;
  }
  if (ctx->initialized != 1 || ctx->model == NULL) {
    return EDGEC_ERR_NOT_INITIALIZED;
  }
  m = ctx->model;
  if ((m->num_inputs > 0 && inputs == NULL) || (m->num_outputs > 0 && outputs == NULL)) {
    return EDGEC_ERR_NULL;
  }
  m->entry(inputs, outputs, ctx->arena, ctx);
  return EDGEC_OK;
}

void edgec_set_kernel_hook(edgec_ctx *ctx, edgec_kernel_hook hook, void *user) {
  if (ctx != NULL) {
    ctx->hook = hook;
    ctx->hook_user = user;
  }
}

const char *edgec_status_str(edgec_status s) {
  switch (s) {
  case EDGEC_OK:
    return "ok";
  case EDGEC_ERR_NULL:
    return "null pointer";
  case EDGEC_ERR_ARENA_SIZE:
    return "arena too small";
  case EDGEC_ERR_ARENA_ALIGN:
    return "arena misaligned";
  case EDGEC_ERR_NOT_INITIALIZED:
    return "context not initialized";
  }
  return "unknown status";
}

size_t edgec_dtype_bits(int32_t dtype) {
  switch (dtype) {
  case EDGEC_DTYPE_UINT4:
  case EDGEC_DTYPE_INT4:
    return 4;
  case EDGEC_DTYPE_UINT8:
  case EDGEC_DTYPE_INT8:
  case EDGEC_DTYPE_BOOL:
    return 8;
  case EDGEC_DTYPE_UINT16:
  case EDGEC_DTYPE_INT16:
  case EDGEC_DTYPE_FLOAT16:
  case EDGEC_DTYPE_BFLOAT16:
    return 16;
  case EDGEC_DTYPE_FLOAT:
  case EDGEC_DTYPE_INT32:
  case EDGEC_DTYPE_UINT32:
    return 32;
  case EDGEC_DTYPE_INT64:
  case EDGEC_DTYPE_DOUBLE:
  case EDGEC_DTYPE_UINT64:
    return 64;
  default:
    return 0;
  }
}

void edgec_rt_kernel_hook(struct edgec_ctx *ctx, uint32_t kernel_index, int32_t is_exit) {
  if (ctx != NULL && ctx->hook != NULL) {
    ctx->hook(ctx->hook_user, kernel_index, (int)is_exit);
  }
}
