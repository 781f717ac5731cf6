/* Each subcommand: argv[0] is the command name. Returns the process exit status. */
#ifndef SHOAL_CLI_COMMANDS_H
#define SHOAL_CLI_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_stream(int argc, char **argv);
int cmd_test_onnx(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_hands(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
