#include "import/tensor_pb.h"

#include <stdio.h>
#include <string.h>

#include "import/import-impl.h"

static void *tpb_alloc(void *ud, size_t size)
{
    sh_pb_alloc *pa = ud;
    void *p = sh_alloc(pa->a, size ? size : 1);
    if (!p)
        pa->failed = 1;
    return p;
}

static void tpb_free(void *ud, void *p)
{
    sh_pb_alloc *pa = ud;
    sh_free(pa->a, p);
}

int sh_tensor_pb_load_file(sh_allocator *a, const char *path, sh_dtype *dt, sh_shape *shape, void **data,
                           size_t *nbytes, char *name, size_t cap, sh_err *err)
{
    *data = NULL;
    *nbytes = 0;
    void *buf = NULL;
    size_t len = 0;
    int rc = sh_onnx_read_file(a, path, &buf, &len, err);
    if (rc)
        return rc;
    sh_pb_alloc pa = {.base = {.alloc = tpb_alloc, .free = tpb_free, .allocator_data = &pa}, .a = a};
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&pa.base, len, buf);
    sh_free(a, buf);
    if (!tp)
        return pa.failed ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory", path)
                         : sh_errf(err, SHOAL_ERR_PARSE, "%s: not a serialized TensorProto", path);
    if (name && cap) {
        snprintf(name, cap, "%s", tp->name ? tp->name : "");
    }
    char dir[1024], what[1100];
    sh_onnx_dirname(path, dir, sizeof dir);
    snprintf(what, sizeof what, "tensor file %s", path);
    rc = sh_onnx_decode_tensor(a, tp, what, dir, dt, shape, data, nbytes, err);
    onnx__tensor_proto__free_unpacked(tp, &pa.base);
    return rc;
}
