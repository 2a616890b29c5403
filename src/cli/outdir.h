/* outdir.h - the output directory of a resumable command (sweep, plan): one process at a
 * time, and the settings its results depend on recorded on the first run and checked on
 * every later one, so that a rerun with other settings is refused instead of mixing them. */
#ifndef FQ_CLI_OUTDIR_H
#define FQ_CLI_OUTDIR_H

/* Takes DIR/WHAT.lock (flock, released when the process ends however it ends), so that two
 * processes never write one directory. Returns the descriptor, or -1 after printing an
 * error that names WHAT ("sweep", "plan"). */
int cli_lock_dir(const char *dir, const char *what);

/* Writes the settings file path (conf, key=value lines), or checks it against conf and
 * names the first line that differs. data_file: the results file when it already has rows
 * (then a missing settings file is refused), else NULL. Returns 0, or an exit status (1 I/O,
 * 2 other settings) after printing an error. */
int cli_check_conf(const char *path, const char *conf, const char *data_file, const char *what);

#endif
