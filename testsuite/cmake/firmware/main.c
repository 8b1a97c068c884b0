/* Runs the model edgec_add_model(vae ...) compiled: fills its input, runs it in a static arena of
 * the size vae.h states, and prints every output value, one per line. */
#include <stdio.h>

#include "vae.h"

static float input[VAE_INPUT0_BYTES / sizeof(float)];
static float output[VAE_OUTPUT0_BYTES / sizeof(float)];
static uint8_t arena[VAE_ARENA_BYTES] __attribute__((aligned(VAE_ARENA_ALIGN)));

int main(void) {
  const void *inputs[VAE_NUM_INPUTS] = {input};
  void *outputs[VAE_NUM_OUTPUTS] = {output};
  edgec_ctx ctx;
  edgec_status status;
  size_t i;

  for (i = 0; i < sizeof input / sizeof input[0]; i++) {
    input[i] = (float)((int)(i % 17) - 8) / 8.0f;
  }
  status = vae_init(&ctx, arena, sizeof arena);
  if (status == EDGEC_OK) {
    status = vae_run(&ctx, inputs, outputs);
  }
  if (status != EDGEC_OK) {
    printf("error: %s\n", edgec_status_str(status));
    return 1;
  }
  for (i = 0; i < sizeof output / sizeof output[0]; i++) {
    printf("%.9g\n", (double)output[i]);
  }
  return 0;
}
