/* harness.c -- runs any edgec-compiled model through its edgec_model descriptor.
 *
 * Build with:
 *   -DEDGEC_HARNESS_MODEL=<prefix>_model      the model descriptor symbol
 *   -DEDGEC_HARNESS_ARENA_BYTES=<n>           arena size (a static, 64-byte aligned buffer)
 *   -DEDGEC_HARNESS_IO_BYTES=<n>              sum of all input and output bytes, each rounded up to 64
 * Reads input i from ./in_<i>.bin (exactly desc.bytes raw little-endian bytes), runs the model and
 * writes output i to ./out_<i>.bin. If ./bench.txt holds an integer N, runs N more times and prints
 * one line "edgec-bench runs=N total_ns=T per_run_ns=P" (plus "cycles=C" with -DEDGEC_HARNESS_DWT on
 * Cortex-M). Exits 0 on success; prints one line "edgec-harness: error: ..." and exits 1 on failure.
 * Works natively, under qemu-user and on Cortex-M with newlib semihosting (rdimon). No malloc. */
#if defined(__linux__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "edgec_runtime.h"

#ifndef EDGEC_HARNESS_MODEL
#error "define EDGEC_HARNESS_MODEL=<prefix>_model"
#endif
#ifndef EDGEC_HARNESS_ARENA_BYTES
#error "define EDGEC_HARNESS_ARENA_BYTES=<bytes>"
#endif
#ifndef EDGEC_HARNESS_IO_BYTES
#error "define EDGEC_HARNESS_IO_BYTES=<bytes>"
#endif

#define HARNESS_MAX_TENSORS 256
#define HARNESS_ALIGN 64u
/* Zero-sized arrays are not C99: allocate at least one byte (the arena size given to edgec_init
 * stays exactly EDGEC_HARNESS_ARENA_BYTES). */
#define HARNESS_ARENA_ALLOC ((EDGEC_HARNESS_ARENA_BYTES) > 0 ? (EDGEC_HARNESS_ARENA_BYTES) : 1)
#define HARNESS_IO_ALLOC ((EDGEC_HARNESS_IO_BYTES) > 0 ? (EDGEC_HARNESS_IO_BYTES) : 1)

/* On bare metal the big buffers go to a separate section that the linker script places in the
 * large external RAM (see cortex_m/mps2_an500.ld); the ".bss." prefix keeps them NOBITS. */
#if defined(__arm__) && !defined(__linux__)
#define HARNESS_BIG(name) __attribute__((aligned(64), section(".bss.edgec_big." name)))
#else
#define HARNESS_BIG(name) __attribute__((aligned(64)))
#endif

extern const edgec_model EDGEC_HARNESS_MODEL;

static uint8_t harness_arena[HARNESS_ARENA_ALLOC] HARNESS_BIG("arena");
static uint8_t harness_io[HARNESS_IO_ALLOC] HARNESS_BIG("io");
static const void *harness_inputs[HARNESS_MAX_TENSORS];
static void *harness_outputs[HARNESS_MAX_TENSORS];

static int fail(const char *what, const char *detail) {
  printf("edgec-harness: error: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  fflush(stdout);
  return 1;
}

/* Carves `bytes` (64-byte aligned) from the io buffer; NULL if it does not fit. */
static uint8_t *take_io(size_t *used, uint32_t bytes) {
  size_t off = *used;
  size_t end = off + ((size_t)bytes + HARNESS_ALIGN - 1u) / HARNESS_ALIGN * HARNESS_ALIGN;
  if (end > (size_t)(EDGEC_HARNESS_IO_BYTES) || end < off) {
    return NULL;
  }
  *used = end;
  return harness_io + off;
}

static int read_input(uint32_t i, const edgec_tensor_desc *d, uint8_t *buf) {
  char path[32];
  FILE *f;
  size_t got;
  int extra;
  sprintf(path, "in_%lu.bin", (unsigned long)i);
  f = fopen(path, "rb");
  if (f == NULL) {
    return fail("cannot open", path);
  }
  got = d->bytes > 0 ? fread(buf, 1, d->bytes, f) : 0;
  extra = fgetc(f);
  fclose(f);
  if (got != d->bytes || extra != EOF) {
    char msg[160];
    sprintf(msg, "%s must hold exactly %lu bytes for input '%.32s'", path, (unsigned long)d->bytes,
            d->name ? d->name : "?");
    return fail("wrong input size", msg);
  }
  return 0;
}

static int write_output(uint32_t i, const edgec_tensor_desc *d, const uint8_t *buf) {
  char path[32];
  FILE *f;
  size_t put;
  sprintf(path, "out_%lu.bin", (unsigned long)i);
  f = fopen(path, "wb");
  if (f == NULL) {
    return fail("cannot create", path);
  }
  put = d->bytes > 0 ? fwrite(buf, 1, d->bytes, f) : 0;
  if (fclose(f) != 0 || put != d->bytes) {
    return fail("cannot write", path);
  }
  return 0;
}

static long read_bench_runs(void) {
  FILE *f = fopen("bench.txt", "r");
  long n = 0;
  if (f == NULL) {
    return 0;
  }
  if (fscanf(f, "%ld", &n) != 1 || n < 0) {
    n = 0;
  }
  fclose(f);
  return n;
}

#if defined(EDGEC_HARNESS_DWT)
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#endif

/* Monotonic nanoseconds where the platform has a clock; clock() otherwise (semihosting). */
static double now_ns(void) {
#if defined(__linux__)
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
#else
  return (double)clock() * (1e9 / (double)CLOCKS_PER_SEC);
#endif
}

static int bench(edgec_ctx *ctx, long runs) {
  double t0, t1;
  long r;
#if defined(EDGEC_HARNESS_DWT)
  uint32_t c0, c1;
  DEMCR |= 1u << 24;
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;
  c0 = DWT_CYCCNT;
#endif
  t0 = now_ns();
  for (r = 0; r < runs; r++) {
    edgec_status s = edgec_run(ctx, harness_inputs, harness_outputs);
    if (s != EDGEC_OK) {
      return fail("edgec_run failed", edgec_status_str(s));
    }
  }
  t1 = now_ns();
#if defined(EDGEC_HARNESS_DWT)
  c1 = DWT_CYCCNT;
  printf("edgec-bench runs=%ld total_ns=%.0f per_run_ns=%.0f cycles=%lu\n", runs, t1 - t0,
         runs > 0 ? (t1 - t0) / (double)runs : 0.0, (unsigned long)(c1 - c0));
#else
  printf("edgec-bench runs=%ld total_ns=%.0f per_run_ns=%.0f\n", runs, t1 - t0,
         runs > 0 ? (t1 - t0) / (double)runs : 0.0);
#endif
  return 0;
}

int main(void) {
  const edgec_model *m = &EDGEC_HARNESS_MODEL;
  edgec_ctx ctx;
  edgec_status s;
  size_t used = 0;
  uint32_t i;
  long runs;

  if (m->num_inputs > HARNESS_MAX_TENSORS || m->num_outputs > HARNESS_MAX_TENSORS) {
    return fail("too many model inputs/outputs for the harness", NULL);
  }
  s = edgec_init(&ctx, m, harness_arena, (size_t)(EDGEC_HARNESS_ARENA_BYTES));
  if (s != EDGEC_OK) {
    return fail("edgec_init failed", edgec_status_str(s));
  }
  for (i = 0; i < m->num_inputs; i++) {
    uint8_t *buf = take_io(&used, m->inputs[i].bytes);
    if (buf == NULL) {
      return fail("EDGEC_HARNESS_IO_BYTES too small for the inputs", NULL);
    }
    if (read_input(i, &m->inputs[i], buf) != 0) {
      return 1;
    }
    harness_inputs[i] = buf;
  }
  for (i = 0; i < m->num_outputs; i++) {
    uint8_t *buf = take_io(&used, m->outputs[i].bytes);
    if (buf == NULL) {
      return fail("EDGEC_HARNESS_IO_BYTES too small for the outputs", NULL);
    }
    harness_outputs[i] = buf;
  }
  s = edgec_run(&ctx, harness_inputs, harness_outputs);
  if (s != EDGEC_OK) {
    return fail("edgec_run failed", edgec_status_str(s));
  }
  for (i = 0; i < m->num_outputs; i++) {
    if (write_output(i, &m->outputs[i], (const uint8_t *)harness_outputs[i]) != 0) {
      return 1;
    }
  }
  runs = read_bench_runs();
  if (runs > 0 && bench(&ctx, runs) != 0) {
    return 1;
  }
  fflush(stdout);
  return 0;
}
