/* cmd_plot.h - `attn plot`: JSON logs drawn on one chart. */
#ifndef ATTN_CMD_PLOT_H
#define ATTN_CMD_PLOT_H

int cmd_plot(int argc, char **argv);

#endif
