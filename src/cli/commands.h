// commands.h — the subcommands of the qshard CLI. Each parses its own options (argv[0] is the
// subcommand name), runs on every rank of `world`, and returns 0 on success, non-zero on error
// (having printed a message that names the input and the problem).
#ifndef QS_COMMANDS_H
#define QS_COMMANDS_H

struct qs_comm;

int qs_cmd_inspect(struct qs_comm *world, int argc, char **argv);
int qs_cmd_generate(struct qs_comm *world, int argc, char **argv);
int qs_cmd_eval(struct qs_comm *world, int argc, char **argv);
int qs_cmd_synth(struct qs_comm *world, int argc, char **argv);
int qs_cmd_quantize(struct qs_comm *world, int argc, char **argv);
int qs_cmd_calib(struct qs_comm *world, int argc, char **argv);
int qs_cmd_report(struct qs_comm *world, int argc, char **argv);
int qs_cmd_verify(struct qs_comm *world, int argc, char **argv);
int qs_cmd_plan(struct qs_comm *world, int argc, char **argv);

#endif
