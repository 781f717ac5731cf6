/* libFuzzer entry for the ONNX importer: any byte string must load or fail with a message,
 * never crash, hang or leak. External data is off (model_dir NULL): the fuzzer must not read
 * files. The same bytes are also split as a file is (onnx_split.c reading through a descriptor
 * a window at a time, from an anonymous memory file): a file's import takes that path.
 * Run: build-fuzz/fuzz/fuzz_import -max_total_time=600 -jobs=1 CORPUS_DIR SEED_DIR */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "import/import-impl.h"
#include "import/onnx_import.h"

/* Splits data as sh_onnx_load_file would, then reads and unpacks every initializer. */
static void split_as_file(sh_allocator *a, const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_import", MFD_CLOEXEC);
    if (fd < 0)
        return;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    sh_onnx_source src = {.fd = fd, .len = size, .path = "fuzz_import"};
    sh_onnx_split split;
    sh_err err;
    if (sh_onnx_split_model(a, &src, &split, &err) == 0) {
        sh_pb_alloc pa;
        sh_onnx_pb_alloc_init(&pa, a);
        for (size_t i = 0; i < split.n_inits; i++) {
            Onnx__TensorProto *t = NULL;
            if (sh_onnx_split_tensor(&pa, &src, &split, i, &t, &err) != 0) {
                if (t || err.msg[0] == '\0')
                    abort();
                continue;
            }
            onnx__tensor_proto__free_unpacked(t, &pa.base);
        }
        sh_onnx_split_free(a, &split);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    close(fd);
}

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
    split_as_file(a, data, size);
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
