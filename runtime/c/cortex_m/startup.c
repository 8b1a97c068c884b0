/* startup.c -- Cortex-M startup for edgec's bare-metal harness (newlib + rdimon semihosting).
 *
 * The vector table sits at address 0 (section .isr_vector, see mps2_an500.ld): the initial stack
 * pointer, then the reset handler and the fault handlers. Reset copies .data from its load address
 * (if it differs), enables the FPU (CPACR, 0xE000ED88, bits 20-23 = full access to CP10/CP11) and
 * calls newlib's _start, which clears .bss, sets up semihosting, runs the init arrays, main and exit.
 * Every fault reports one line over semihosting and ends the emulator with a nonzero status. */
#include <stdint.h>

extern uint32_t __stack_top;
extern uint32_t __data_load__, __data_start__, __data_end__;
extern void _start(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

typedef void (*vector_fn)(void);
typedef union {
  vector_fn fn;
  uint32_t *sp;
} vector_entry;

__attribute__((used, section(".isr_vector"))) const vector_entry edgec_vectors[16] = {
    {.sp = &__stack_top},   /* initial SP */
    {Reset_Handler},        /* reset */
    {Fault_Handler},        /* NMI */
    {Fault_Handler},        /* HardFault */
    {Fault_Handler},        /* MemManage */
    {Fault_Handler},        /* BusFault */
    {Fault_Handler},        /* UsageFault */
    {0},                    /* reserved */
    {0},                    /* reserved */
    {0},                    /* reserved */
    {0},                    /* reserved */
    {Default_Handler},      /* SVCall */
    {Default_Handler},      /* DebugMonitor */
    {0},                    /* reserved */
    {Default_Handler},      /* PendSV */
    {Default_Handler},      /* SysTick */
};

/* Semihosting call: operation in r0, argument in r1, result in r0. */
static uint32_t semihost(uint32_t op, const void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void fatal(const char *msg) {
  /* SYS_WRITE0 prints a NUL-terminated string; SYS_EXIT with ADP_Stopped_RunTimeErrorUnknown
   * (0x20023) makes QEMU exit with status 1. */
  semihost(0x04u, msg);
  semihost(0x18u, (const void *)(uintptr_t)0x20023u);
  for (;;) {
  }
}

void Fault_Handler(void) { fatal("edgec-harness: error: HardFault (or other fault) on Cortex-M\n"); }

void Default_Handler(void) { fatal("edgec-harness: error: unexpected exception on Cortex-M\n"); }

void Reset_Handler(void) {
  uint32_t *src = &__data_load__;
  uint32_t *dst = &__data_start__;
  if (src != dst) {
    while (dst < &__data_end__) {
      *dst++ = *src++;
    }
  }
#if defined(__ARM_FP)
  CPACR |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  _start();
  fatal("edgec-harness: error: _start returned\n");
}
