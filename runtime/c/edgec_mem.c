/* edgec_mem.c -- weak memcpy/memset/memmove for bare-metal targets without a libc.
 * Generated code may call these (LLVM lowers large copies and fills to them). A libc's strong
 * definitions take precedence when one is linked. Link this file only on bare-metal targets. */
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define EDGEC_WEAK __attribute__((weak))
/* Keep the compiler from turning these loops back into calls to themselves. */
#define EDGEC_NO_BUILTIN __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define EDGEC_WEAK
#define EDGEC_NO_BUILTIN
#endif

#if defined(__clang__)
#undef EDGEC_NO_BUILTIN
#define EDGEC_NO_BUILTIN __attribute__((no_builtin))
#endif

EDGEC_WEAK EDGEC_NO_BUILTIN void *memcpy(void *dst, const void *src, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  const uint8_t *s = (const uint8_t *)src;
  while (n--) {
    *d++ = *s++;
  }
  return dst;
}

EDGEC_WEAK EDGEC_NO_BUILTIN void *memmove(void *dst, const void *src, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  const uint8_t *s = (const uint8_t *)src;
  if (d < s) {
    while (n--) {
      *d++ = *s++;
    }
  } else if (d > s) {
    d += n;
    s += n;
    while (n--) {
      *--d = *--s;
    }
  }
  return dst;
}

EDGEC_WEAK EDGEC_NO_BUILTIN void *memset(void *dst, int c, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  while (n--) {
    *d++ = (uint8_t)c;
  }
  return dst;
}
