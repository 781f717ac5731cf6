/* libFuzzer entry for the TFLite importer and the .task bundle reader: any byte string must
 * load or fail with a message, never crash, hang or leak. Each input is tried as a TFLite
 * flatbuffer and as a zip bundle whose single .tflite member is then imported.
 * Run: build-fuzz/fuzz/fuzz_tflite -max_len=6000000 -max_total_time=600 CORPUS_DIR SEED_DIR */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "import/tflite_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void import_once(sh_allocator *a, const void *buf, size_t len)
{
    sh_graph *g = NULL;
    sh_err err;
    int rc = sh_tflite_load_buffer(a, buf, len, "fuzz", &g, &err);
    if (rc == 0) {
        if (!g)
            abort();
        sh_graph_destroy(g);
    } else if (g || err.msg[0] == '\0') {
        abort();    /* a failure must leave nothing behind and say why */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return 0;
    /* constants are widened to float32: cap one input's allocations so only leaks count */
    sh_allocator_set_limit(a, (size_t)256 << 20);
    import_once(a, data, size);
    if (sh_allocator_stats(a).in_use != 0)
        abort();
    void *member = NULL;
    size_t len = 0;
    sh_err err;
    if (sh_task_read_member_buffer(a, data, size, NULL, &member, &len, &err) == 0) {
        import_once(a, member, len);
        sh_free(a, member);
    } else if (member || err.msg[0] == '\0') {
        abort();
    }
    if (sh_allocator_stats(a).in_use != 0)
        abort();
    sh_allocator_destroy(a);
    return 0;
}
