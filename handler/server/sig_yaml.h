/*
 * sig_yaml.h: loads a YAML configuration into the yoml_t tree that libh2o's configurator consumes.
 *
 * What the loader does beyond plain YAML, so that h2o-style configuration files work:
 * - duplicate mapping keys are kept, in file order (h2o configurations repeat `listen:`);
 * - an alias becomes the anchored node itself, shared with one more reference;
 * - a scalar tagged `!file PATH` is replaced by the document loaded from PATH; a relative PATH is taken relative to
 *   the directory of the file that contains the tag. Includes nest at most SIG_YAML_MAX_INCLUDE_DEPTH deep and
 *   cycles are reported;
 * - any other tag is left in yoml_t.tag for the consumer to judge.
 * Merge keys (`<<`) are not expanded.
 *
 * Errors are written to `errbuf` as "FILE:LINE: message" (LINE is 1-based), or "FILE: message" when there is no
 * line, e.g. "conf/x.conf:7: YAML syntax error: mapping values are not allowed in this context".
 */
#ifndef SIG_YAML_H
#define SIG_YAML_H

#include <stddef.h>
#include "server/yoml.h"

/** How many `!file` includes may nest inside the top-level file. */
#define SIG_YAML_MAX_INCLUDE_DEPTH 16

/**
 * Loads the single YAML document in the file `path`. Returns its root node (refcnt 1, release with
 * `yoml_free(root, NULL)`), or NULL with an error message in `errbuf` (truncated to `errbuf_size`). An empty file or
 * more than one document is an error. Every node records `path` (or the included file) as its filename.
 */
yoml_t *sig_yaml_load_file(const char *path, char *errbuf, size_t errbuf_size);

/**
 * Like sig_yaml_load_file(), but parses the `len` bytes at `text`. `name_for_errors` (not NULL) is used as the file
 * name in nodes and messages, and its directory is the base for relative `!file` paths (the current directory if it
 * has no slash).
 */
yoml_t *sig_yaml_load_string(const char *text, size_t len, const char *name_for_errors, char *errbuf, size_t errbuf_size);

#endif
