/* Test helper: reads a float ONNX TensorProto (dims + raw_data or float_data) without the
 * importer, so the vision tests do not depend on src/import. */
#ifndef SHOAL_TEST_TENSOR_PB_H
#define SHOAL_TEST_TENSOR_PB_H

#include <stddef.h>
#include <stdint.h>

typedef struct test_tensor {
    int ndim;
    int64_t dims[8];
    float *data;     /* malloc'ed, free() it */
    size_t count;
} test_tensor;

/* 0 on success, -1 with a message in why[256] otherwise. */
int test_tensor_read(const char *path, test_tensor *t, char *why);

#endif
