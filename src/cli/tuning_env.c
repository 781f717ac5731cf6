/* shoal_tuning from the environment; see tuning_env.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/tuning_env.h"

bool cli_env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The switches that turn a default off are written NAME=0 (SHOAL_CUDA_PDL=0). */
static bool env_zero(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "0");
}

static int env_int(const char *cmd, const char *name, int lo, int hi, int *out)
{
    const char *v = getenv(name);
    return v ? cli_int32(cmd, name, v, lo, hi, out) : 0;
}

int cli_tuning_from_env(const char *cmd, shoal_tuning *t)
{
    int igemm = -2;
    long long pixels = 0;
    const char *v;
    if (env_int(cmd, "SHOAL_CUDA_STREAMS", 1, 4, &t->cuda_streams) ||
        env_int(cmd, "SHOAL_CUDA_STREAM_WINDOW", 1, 1 << 20, &t->cuda_stream_window) ||
        env_int(cmd, "SHOAL_CUDA_STREAM_SIDE_KIB", 1, 1 << 30, &t->cuda_stream_side_kib) ||
        env_int(cmd, "SHOAL_CUDA_IGEMM", 0, 1, &igemm) ||
        env_int(cmd, "SHOAL_CPU_POOL_SPIN_US", -1, 1000000, &t->cpu_pool_spin_us) ||
        env_int(cmd, "SHOAL_CPU_WINOGRAD", -1, 1, &t->cpu_winograd) ||
        env_int(cmd, "SHOAL_CPU_IGEMM", -1, 1, &t->cpu_igemm))
        return -1;
    if (igemm != -2)
        t->cuda_igemm = igemm ? 1 : -1;
    if ((v = getenv("SHOAL_CUDA_IGEMM_MAX_GFLOP")) &&
        cli_double(cmd, "SHOAL_CUDA_IGEMM_MAX_GFLOP", v, 1e-6, 1e6, &t->cuda_igemm_max_gflop))
        return -1;
    if ((v = getenv("SHOAL_CUDA_IGEMM_MAX_PIXELS"))) {
        if (cli_int(cmd, "SHOAL_CUDA_IGEMM_MAX_PIXELS", v, 1, 1LL << 40, &pixels))
            return -1;
        t->cuda_igemm_max_pixels = pixels;
    }
    t->cuda_no_wgmma |= env_zero("SHOAL_CUDA_WGMMA");
    t->cuda_no_pdl |= env_zero("SHOAL_CUDA_PDL");
    t->cuda_no_pdl_small |= env_zero("SHOAL_CUDA_PDL_SMALL");
    t->cuda_no_convt_gemm |= env_zero("SHOAL_CUDA_CONVT_GEMM");
    t->cuda_no_lane_priority |= env_zero("SHOAL_CUDA_LANE_PRIORITY");
    t->cuda_no_planar |= cli_env_flag("SHOAL_CUDA_NO_PLANAR");
    t->cuda_no_fuse_add |= cli_env_flag("SHOAL_CUDA_NO_FUSE_ADD");
    t->cuda_no_early_download |= cli_env_flag("SHOAL_CUDA_NO_EARLY_DOWNLOAD");
    t->cuda_no_transpose_fold |= cli_env_flag("SHOAL_CUDA_NO_TRANSPOSE_FOLD");
    t->cuda_no_slice_views |= cli_env_flag("SHOAL_CUDA_NO_SLICE_VIEWS");
    t->cuda_cudnn_fixed_algo |= cli_env_flag("SHOAL_CUDA_CUDNN_FIXED_ALGO");
    t->cuda_log_views |= cli_env_flag("SHOAL_CUDA_VIEWS_LOG");
    t->cuda_profile_convs |= cli_env_flag("SHOAL_CUDA_PROFILE_CONVS");
    t->cpu_no_layout_flow |= cli_env_flag("SHOAL_CPU_NO_LAYOUT_FLOW");
    return 0;
}

static void log_stderr(void *user, shoal_log_level level, const char *msg)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", msg);
}

int cli_runtime_tuning(const char *cmd, shoal_runtime_params *p)
{
    if (cli_tuning_from_env(cmd, &p->tuning) != 0)
        return -1;
    if (!p->log && (p->tuning.cuda_log_views || p->tuning.cuda_profile_convs))
        p->log = log_stderr;
    return 0;
}
