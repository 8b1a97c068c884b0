/* harness.c -- runs any edgec-compiled model through its edgec_model descriptor.
 *
 * Build with:
 *   -DEDGEC_HARNESS_MODEL=<prefix>_model      the model descriptor symbol
 *   -DEDGEC_HARNESS_ARENA_BYTES=<n>           arena size (a static, 64-byte aligned buffer)
 *   -DEDGEC_HARNESS_IO_BYTES=<n>              sum of all input and output bytes, each rounded up to 64
 * Reads input i from ./in_<i>.bin (exactly desc.bytes raw little-endian bytes), runs the model and
 * writes output i to ./out_<i>.bin. If ./bench.txt holds an integer N, runs N more times and prints
 * one line "edgec-bench runs=N total_ns=T per_run_ns=P" (plus "cycles=C" with -DEDGEC_HARNESS_DWT on
 * Cortex-M). With -DEDGEC_HARNESS_PROFILE the model must be compiled with kernel hooks: the N runs
 * then also time every kernel call through the runtime's hook and print
 * "edgec-profile clock=C hz=H runs=N calls=K whole=W" and one "edgec-profile-call I T" per call
 * (T, W: clock ticks summed over the N runs; see docs/profiling.md).
 * Exits 0 on success; prints one line "edgec-harness: error: ..." and exits 1 on failure.
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

#if defined(EDGEC_HARNESS_PROFILE)
#ifndef EDGEC_HARNESS_MAX_CALLS
#define EDGEC_HARNESS_MAX_CALLS 8192
#endif
#if defined(__arm__) && !defined(__linux__)
/* The CMSDK APB timer 0 of the MPS2 boards (QEMU models it on mps2-an385/an386/an500): a 32-bit
 * down-counter at the 25 MHz system clock. Under `qemu-system-arm -icount shift=0` virtual time
 * advances 1 ns per instruction, so one tick is 40 instructions. (QEMU has no DWT cycle counter.) */
#define PROF_TIMER_CTRL (*(volatile uint32_t *)0x40000000u)
#define PROF_TIMER_VALUE (*(volatile uint32_t *)0x40000004u)
#define PROF_TIMER_RELOAD (*(volatile uint32_t *)0x40000008u)
#define PROF_CLOCK "cmsdk-timer0"
#define PROF_HZ 25000000u
typedef uint32_t prof_t;
static void prof_start(void) {
  PROF_TIMER_CTRL = 0u;
  PROF_TIMER_RELOAD = 0xFFFFFFFFu;
  PROF_TIMER_VALUE = 0xFFFFFFFFu;
  PROF_TIMER_CTRL = 1u;
}
/* Counts up, so that differences read forward; wraps after 2^32 ticks (171 s at 25 MHz). */
static prof_t prof_now(void) { return 0xFFFFFFFFu - PROF_TIMER_VALUE; }
#else
#define PROF_CLOCK "monotonic-ns"
#define PROF_HZ 1000000000u
typedef uint64_t prof_t;
static void prof_start(void) {}
static prof_t prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif
/* Ticks per call summed over the profiled runs; a static table, as the runtime has no heap. */
static uint64_t prof_calls[EDGEC_HARNESS_MAX_CALLS];
static prof_t prof_entered;

static void prof_hook(void *user, uint32_t kernel_index, int is_exit) {
  prof_t now = prof_now();
  (void)user;
  if (!is_exit) {
    prof_entered = now;
  } else if (kernel_index < EDGEC_HARNESS_MAX_CALLS) {
    prof_calls[kernel_index] += (uint64_t)(prof_t)(now - prof_entered);
  }
}

static int profile(edgec_ctx *ctx, long runs) {
  const edgec_model *m = ctx->model;
  uint64_t whole = 0;
  long r;
  uint32_t i;
  if (m->num_kernels > EDGEC_HARNESS_MAX_CALLS) {
    return fail("too many kernel calls to profile (raise EDGEC_HARNESS_MAX_CALLS)", NULL);
  }
  prof_start();
  edgec_set_kernel_hook(ctx, prof_hook, NULL);
  for (r = 0; r < runs; r++) {
    prof_t t0 = prof_now();
    edgec_status s = edgec_run(ctx, harness_inputs, harness_outputs);
    whole += (uint64_t)(prof_t)(prof_now() - t0);
    if (s != EDGEC_OK) {
      return fail("edgec_run failed", edgec_status_str(s));
    }
  }
  edgec_set_kernel_hook(ctx, NULL, NULL);
  /* As doubles: exact below 2^53, and newlib's printf may lack %llu. */
  printf("edgec-profile clock=%s hz=%lu runs=%ld calls=%lu whole=%.0f\n", PROF_CLOCK, (unsigned long)PROF_HZ,
         runs, (unsigned long)m->num_kernels, (double)whole);
  for (i = 0; i < m->num_kernels; i++) {
    printf("edgec-profile-call %lu %.0f\n", (unsigned long)i, (double)prof_calls[i]);
  }
  return 0;
}
#else

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
#endif /* EDGEC_HARNESS_PROFILE */

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
#if defined(EDGEC_HARNESS_PROFILE)
  if (runs > 0 && profile(&ctx, runs) != 0) {
    return 1;
  }
#else
  if (runs > 0 && bench(&ctx, runs) != 0) {
    return 1;
  }
#endif
  fflush(stdout);
  return 0;
}
