/* bench_cpu_gemm [THREADS] [MODEL.onnx INPUT.npy]: times the GEMM shapes of small vision nets
 * with OpenBLAS threading its own calls vs. single-threaded calls split over the backend's
 * pool, then (optionally) a whole model in both modes. A tool, not a test: no assertions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu_impl.h"
#include "core/npy.h"
#include "runtime/session.h"

void sh_backend_cpu_set_blas_threads(sh_backend *b, bool openblas_threads);
double *sh_backend_cpu_profile(sh_backend *b, bool on);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    sh_allocator *a = sh_allocator_create();
    sh_backend be;
    sh_err err;
    sh_backend_params bp = {.alloc = a, .n_threads = threads};
    if (sh_backend_cpu_create(&bp, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cpu_ctx *ctx = be.ctx;
    /* M (out channels), N (output pixels), K (in channels * kernel) of YOLOX-Nano/face-detector convs. */
    static const int shapes[][3] = {{32, 43264, 144}, {64, 10816, 288}, {64, 10816, 64}, {128, 2704, 576},
                                    {256, 676, 1152}, {128, 2704, 128}, {85, 2704, 64}, {16, 19200, 27}};
    int ns = sizeof shapes / sizeof shapes[0];
    printf("threads=%d\n%-20s %12s %12s\n", ctx->n_threads, "M x N x K", "own (ms)", "split (ms)");
    for (int s = 0; s < ns; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N),
              *C = malloc(sizeof(float) * (size_t)M * N);
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)K * N; i++)
            B[i] = (float)(i % 5) * 0.1f;
        double best[2];
        for (int mode = 0; mode < 2; mode++) {
            sh_backend_cpu_set_blas_threads(&be, mode == 0);
            best[mode] = 1e30;
            for (int r = 0; r < 12; r++) {
                double t0 = now_ms();
                cpu_sgemm(ctx, false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
                double dt = now_ms() - t0;
                if (r >= 2 && dt < best[mode])
                    best[mode] = dt;
            }
        }
        char name[64];
        snprintf(name, sizeof name, "%dx%dx%d", M, N, K);
        printf("%-20s %12.3f %12.3f\n", name, best[0], best[1]);
        free(A);
        free(B);
        free(C);
    }
    if (argc > 3) {
        sh_npy in;
        if (sh_npy_read_file(a, argv[3], &in, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (int mode = 0; mode < 2; mode++) {
            sh_backend_cpu_set_blas_threads(&be, mode == 0);
            sh_session_params sp = sh_session_default_params();
            sp.alloc = a;
            sp.backend = &be;
            sh_session *s;
            if (sh_session_create_file(&sp, argv[2], &s, &err) ||
                sh_session_set_input(s, 0, in.dtype, &in.shape, in.data, in.nbytes, &err) || sh_session_run(s, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            double best = 1e30, sum = 0;
            int reps = 10;
            for (int r = 0; r < reps; r++) {
                double t0 = now_ms();
                sh_session_run(s, &err);
                double dt = now_ms() - t0;
                sum += dt;
                best = dt < best ? dt : best;
            }
            printf("%s: %s mean %.2f ms, best %.2f ms\n", argv[2], mode == 0 ? "own threads" : "split", sum / reps, best);
            double *prof = sh_backend_cpu_profile(&be, true);
            for (int r = 0; r < reps; r++)
                sh_session_run(s, &err);
            printf("  per op (mean ms):");
            for (int o = 0; o < SH_OP_COUNT; o++)
                if (prof[o] > 0.01 * reps)
                    printf(" %s %.2f", sh_op_name((sh_op)o), prof[o] / reps);
            printf("\n");
            sh_backend_cpu_profile(&be, false);
            sh_session_destroy(s);
        }
        sh_npy_free(a, &in);
    }
    sh_backend_destroy(&be);
    return 0;
}
