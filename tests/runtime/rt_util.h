/* Helpers shared by the runtime tests and the mode-switch benchmark. */
#ifndef SHOAL_TEST_RT_UTIL_H
#define SHOAL_TEST_RT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

#define TINY_CONFIG SHOAL_SOURCE_DIR "/tests/runtime/data/tiny.yaml"
#define REFERENCE_CONFIG SHOAL_SOURCE_DIR "/tests/runtime/data/reference.yaml"

/* A deterministic synthetic RGB frame (gradients and a few blocks), w x h, owned. */
shoal_image rt_test_frame(int w, int h);

/* Everything a run returned except timings, as text: floats written exactly (%a), so two
 * runs are equal iff their results are bit for bit equal. malloc'ed; NULL on OOM. */
char *rt_results_signature(shoal_results_t res);

/* Device bytes in use now (the runtime's budget accounting). */
int64_t rt_in_use(shoal_runtime_t rt);
/* 1 when the model is resident. */
int rt_resident(shoal_runtime_t rt, const char *model);

#endif
