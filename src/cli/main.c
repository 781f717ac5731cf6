/* The shoal command: one subcommand per file in this folder. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "shoal.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} COMMANDS[] = {
    {"run", cmd_run, "run models of a config (or one model) on images, print detections"},
    {"exec", cmd_exec, "run one ONNX model on .npy inputs, write .npy outputs"},
    {"plan", cmd_plan, "show the memory plan of a config: weights, arenas, budget"},
    {"bench", cmd_bench, "benchmark load, per-model and per-mode latency and memory"},
    {"monitor", cmd_monitor, "live table of device memory, with per-model attribution"},
    {"report", cmd_report, "memory report with recommendations (JSON or Prometheus text)"},
    {"serve", cmd_serve, "HTTP inference server"},
    {"stream", cmd_stream, "stream camera frames to a server's /v1/stream (reference client, load test)"},
    {"test-onnx", cmd_test_onnx, "run ONNX conformance test folders"},
    {"inspect", cmd_inspect, "inputs, outputs, ops and parameter bytes of an ONNX model"},
    {"quantize", cmd_quantize, "post-training int8 quantization of an ONNX model into a QDQ model"},
    {"hands", cmd_hands, "MediaPipe's hand landmarker (TFLite palm + landmark models) on images"},
};

static void usage(FILE *f)
{
    fprintf(f, "shoal %s — several vision models in one memory budget\n\nusage: shoal COMMAND [ARGS]\n\n", SHOAL_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n'shoal COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("shoal %s\n", SHOAL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name))
            continue;
        /* `shoal run --version` asks the same question as `shoal --version`; answering here
         * keeps every subcommand's parser from taking it for a flag that needs a value. */
        for (int a = 2; a < argc; a++)
            if (!strcmp(argv[a], "--version")) {
                printf("shoal %s\n", SHOAL_VERSION);
                return 0;
            }
        return COMMANDS[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "shoal: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
