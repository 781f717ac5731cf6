/* libFuzzer entry for the ONNX importer: any byte string must load or fail with a message,
 * never crash, hang or leak. External data is off (model_dir NULL): the fuzzer must not read
 * files. Run: build-fuzz/fuzz/fuzz_import -max_total_time=600 -jobs=1 CORPUS_DIR SEED_DIR */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "import/onnx_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return 0;
    /* A hostile file may declare large tensors backed by real bytes; cap what one input may
     * allocate so the fuzzer's RSS limit only ever sees real leaks. */
    sh_allocator_set_limit(a, (size_t)256 << 20);
    sh_graph *g = NULL;
    sh_err err;
    int rc = sh_onnx_load_buffer(a, data, size, NULL, &g, &err);
    if (rc == 0) {
        if (!g)
            abort();
        sh_graph_destroy(g);
    } else if (g || err.msg[0] == '\0') {
        abort();    /* a failure must leave nothing behind and say why */
    }
    if (sh_allocator_stats(a).in_use != 0)
        abort();
    sh_onnx_info *info = NULL;
    if (sh_onnx_info_buffer(a, data, size, &info, &err) == 0)
        sh_onnx_info_destroy(a, info);
    if (sh_allocator_stats(a).in_use != 0)
        abort();
    sh_allocator_destroy(a);
    return 0;
}
