#include "backends/backend.h"

int sh_backend_cpu_create(const sh_backend_params *p, sh_backend *out, sh_err *err)
{
    (void)p;
    (void)out;
    return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "CPU backend not built yet");
}
